"""The usage record: one JSON line per request that reached the shim.

A record starts as `new_record()` when the request arrives, is filled in by small steps as the
request goes (routing, upstream status, tokens, SSE stats, timing) and is written last, exactly once
(proxy.sinks.usage_log). The field vocabulary lives here; nothing in this module does I/O.
"""
from __future__ import annotations

import json
import math
import time
from datetime import datetime, timezone

try:  # a record line in ~1/5 of json's time; the same bytes for the types a record holds
    import orjson
except ImportError:  # pragma: no cover - a dependency; json writes the same line without it
    orjson = None

USAGE_FILE = "usage.jsonl"
# the op of a runtime control change (proxy.pipeline.controls): a line of the log, never a request
CONTROL_OP = "control"

# Field order follows DESIGN.md so that lines read well by eye and by grep.
FIELDS = (
    "ts", "rid", "session", "path", "protocol_in", "protocol_out", "model", "upstream_model", "lane",
    "provider", "decision", "op", "status", "upstream_status", "err_type", "reason", "h2",
    "upstream", "latency_ms", "ttfb_ms", "overhead_ms", "in_tokens", "out_tokens",
    "cache_read_tokens", "cache_creation_tokens", "sse", "retries", "partial", "bytes_in",
    "bytes_out", "client_session", "rewrites",
)
TOKEN_FIELDS = ("in_tokens", "out_tokens", "cache_read_tokens", "cache_creation_tokens")


_second: list = [None, ""]  # the last whole second formatted, and its "YYYY-MM-DDTHH:MM:SS."


def utc_timestamp(epoch: float | None = None) -> str:
    """ISO-8601 UTC with milliseconds, e.g. 2026-11-25T00:31:02.123Z.

    Exactly `datetime.fromtimestamp(epoch, timezone.utc)` (microseconds rounded half to even, as
    it rounds them), with the date and time formatted once per second rather than once per record.
    """
    t = time.time() if epoch is None else epoch
    frac, whole = math.modf(t)
    us = round(frac * 1e6)
    if us >= 1_000_000:
        whole += 1.0
        us -= 1_000_000
    elif us < 0:
        whole -= 1.0
        us += 1_000_000
    second, prefix = _second
    if whole != second:
        prefix = datetime.fromtimestamp(whole, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.")
        _second[:] = whole, prefix
    return f"{prefix}{us // 1000:03d}Z"


_BLANK = dict.fromkeys(FIELDS)


def new_record(rid: str, path: str, protocol_in: str = "anthropic") -> dict:
    """A record with every field present, as a request arrives."""
    record = _BLANK.copy()
    record["ts"] = utc_timestamp()
    record["rid"] = rid
    record["path"] = path
    record["protocol_in"] = protocol_in
    record["h2"] = False
    record["retries"] = record["bytes_in"] = record["bytes_out"] = 0
    return record


def set_tokens(record: dict, tokens: dict) -> None:
    for key in TOKEN_FIELDS:
        value = tokens.get(key)
        if isinstance(value, int):
            record[key] = value



def record_line(record: dict) -> bytes:
    """One record as one compact UTF-8 JSON line (orjson, or json for what orjson refuses)."""
    if orjson is not None:
        try:
            return orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)
        except TypeError:  # e.g. a subclass of str it will not write, or an int past 64 bits
            pass
    return (json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n").encode()
