"""Usage records: one JSON line per request that reached the shim.

A record starts as `new_record()` when the request arrives, is filled in by small steps as the request
goes (routing, upstream status, tokens, SSE stats, timing) and is written last, exactly once, by the
one `UsageWriter`. The writer appends each record as a single `write()` on an O_APPEND descriptor, so
lines are whole and never interleaved, and it is synchronous on purpose: it can run inside a `finally`
of a cancelled handler, where awaiting is no longer possible.
"""
from __future__ import annotations

import json
import os
import time
from datetime import datetime, timezone
from pathlib import Path

USAGE_FILE = "usage.jsonl"

# Field order follows DESIGN.md so that lines read well by eye and by grep.
FIELDS = (
    "ts", "rid", "session", "path", "protocol_in", "protocol_out", "model", "upstream_model", "lane",
    "provider", "decision", "op", "status", "upstream_status", "err_type", "reason", "h2",
    "upstream", "latency_ms", "ttfb_ms", "overhead_ms", "in_tokens", "out_tokens",
    "cache_read_tokens", "cache_creation_tokens", "sse", "retries", "partial", "bytes_in",
    "bytes_out", "client_session", "rewrites",
)
TOKEN_FIELDS = ("in_tokens", "out_tokens", "cache_read_tokens", "cache_creation_tokens")


def utc_timestamp(epoch: float | None = None) -> str:
    """ISO-8601 UTC with milliseconds, e.g. 2026-11-25T00:31:02.123Z."""
    dt = datetime.fromtimestamp(time.time() if epoch is None else epoch, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def new_record(rid: str, path: str, protocol_in: str = "anthropic") -> dict:
    """A record with every field present, as a request arrives."""
    record = dict.fromkeys(FIELDS)
    record.update(ts=utc_timestamp(), rid=rid, path=path, protocol_in=protocol_in, h2=False,
                  retries=0, bytes_in=0, bytes_out=0)
    return record


def set_tokens(record: dict, tokens: dict) -> None:
    for key in TOKEN_FIELDS:
        value = tokens.get(key)
        if isinstance(value, int):
            record[key] = value


class UsageWriter:
    """Appends records to `<logs_dir>/usage.jsonl`, one whole line per write."""

    def __init__(self, logs_dir: str | os.PathLike) -> None:
        self.path = Path(logs_dir) / USAGE_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.written = 0

    def write(self, record: dict) -> None:
        line = (json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n").encode()
        view = memoryview(line)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
        self.written += 1

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def rotate_usage(logs_dir: str | os.PathLike, keep: int = 5) -> Path | None:
    """Shift usage.jsonl -> .1 -> .2 … (keeping `keep`); returns the new .1 or None if nothing to do.

    Only for a stopped shim (the repro job rotates before its run); live rotation comes with the
    operations work.
    """
    path = Path(logs_dir) / USAGE_FILE
    if not path.exists() or path.stat().st_size == 0:
        return None
    oldest = path.with_name(f"{USAGE_FILE}.{keep}")
    oldest.unlink(missing_ok=True)
    for n in range(keep - 1, 0, -1):
        src = path.with_name(f"{USAGE_FILE}.{n}")
        if src.exists():
            src.rename(path.with_name(f"{USAGE_FILE}.{n + 1}"))
    first = path.with_name(f"{USAGE_FILE}.1")
    path.rename(first)
    return first
