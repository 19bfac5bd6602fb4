"""The usage record: one JSON line per request that reached the shim.

A record starts as `new_record()` when the request arrives, is filled in by small steps as the
request goes (routing, upstream status, tokens, SSE stats, timing) and is written last, exactly once
(proxy.sinks.usage_log). The field vocabulary lives here; nothing in this module does I/O.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal, NotRequired, TypedDict

from proxy.core.jsontext import utf8

try:  # a record line without the stdlib encoder's cost; the same bytes for the types a record holds
    import orjson
except ImportError:  # pragma: no cover - a dependency; json writes the same line without it
    orjson = None  # type: ignore[assignment]  # (an optional module: None when missing)

USAGE_FILE = "usage.jsonl"


class Op(StrEnum):
    """What a record is of: a model call (streamed or not, or a token count), or a control change."""

    STREAM = "stream"
    NONSTREAM = "nonstream"
    COUNT_TOKENS = "count_tokens"
    CONTROL = "control"  # a runtime control change (proxy.pipeline.controls): never a request


NAME_CHARS = 256  # the default of CCP_MAX_NAME_CHARS


def clip(text: str | None, limit: int = NAME_CHARS) -> str | None:
    """A client's string as the shim logs or keeps it: at most `limit` characters (and `…`)."""
    if text is None or len(text) <= limit:
        return text
    return text[:limit] + "…"


class ErrType(StrEnum):
    """Why a request failed, by whose fault (None: it did not)."""

    BAD_REQUEST = "bad_request"  # the client's request (4xx answered by the shim)
    UPSTREAM_4XX = "upstream_4xx"
    UPSTREAM_5XX = "upstream_5xx"
    NET = "net"  # the upstream connection failed or broke
    TIMEOUT = "timeout"  # the upstream did not answer in time
    IDLE_TIMEOUT = "idle_timeout"  # a stream went quiet for CCP_SSE_IDLE_TIMEOUT
    CLIENT_ABORT = "client_abort"
    OVERLOADED = "overloaded"  # more connections than CCP_MAX_CONNECTIONS
    INTERNAL = "internal"  # a bug in the shim


class Reason(StrEnum):
    """How a request ended (besides these: `sse_error:<type>`, `fallback:…`, a fallback's why)."""

    STREAMING = "streaming"  # a stream that ended as streams end
    STREAM_INCOMPLETE = "stream_incomplete"  # the upstream closed before message_stop
    STREAM_TIMEOUT = "stream_timeout"
    UPSTREAM_RESET = "upstream_reset"  # the upstream broke the stream
    CLIENT_DISCONNECTED = "client_disconnected"
    LOCAL_ESTIMATE = "local_estimate"  # count_tokens answered by the shim's estimate
    MAX_TOKENS_REACHED = "max_tokens_reached"  # a provider's 400 that Anthropic answers 200
    UPSTREAM_TOO_LARGE = "upstream_too_large"  # the answer grew past CCP_MAX_RESPONSE_BYTES
    REFUSED = "refused"  # the shim refused the request before reading it (Host, Origin, overload)


def sse_error_reason(error_type: str) -> str:
    return f"sse_error:{error_type}"


def err_type_of_status(status: int) -> ErrType:
    """An upstream's error status, as the record's err_type."""
    return ErrType.UPSTREAM_5XX if status >= 500 else ErrType.UPSTREAM_4XX


def err_type_of_sse_error(error_type: str) -> ErrType:
    """An in-band `error` event's type, as the record's err_type."""
    return (
        ErrType.UPSTREAM_5XX
        if error_type in ("api_error", "overloaded_error")
        else ErrType.UPSTREAM_4XX
    )


CONTROL_OP = Op.CONTROL


class UsageRecord(TypedDict):
    """One request's record, as the pipeline fills it and as its JSON line holds it.

    A dict at run time (a record is built and written per request: a dict costs nothing to make
    or to encode), typed for the checker, which holds every `rec["…"]` to these names and types.
    The field order follows DESIGN.md so that lines read well by eye and by grep."""

    ts: str
    rid: str
    session: str | None
    path: str
    protocol_in: str
    protocol_out: str | None
    model: str | None
    upstream_model: str | None
    lane: str | None
    provider: str | None
    decision: str | None  # a Decision kind (proxy.core.routing) or Decide.CONTROL
    op: str | None  # an Op
    status: int | None
    upstream_status: int | None
    err_type: str | None  # an ErrType
    reason: str | None  # a Reason, or one of the open forms it names
    h2: bool
    upstream: str | None
    latency_ms: float | None
    ttfb_ms: float | None
    overhead_ms: float | None
    in_tokens: int | None
    out_tokens: int | None
    cache_read_tokens: int | None
    cache_creation_tokens: int | None
    sse: dict | None
    retries: int
    partial: str | None
    bytes_in: int
    bytes_out: int
    client_session: str | None
    rewrites: list[str] | None
    # only on some records, after the others
    header_mode: NotRequired[
        str
    ]  # the credential header a non-anthropic Anthropic-protocol lane got
    control: NotRequired[dict]  # what a control record (op `control`) changed


ONLY_SOME = ("header_mode", "control")
FIELDS: tuple[str, ...] = tuple(k for k in UsageRecord.__annotations__ if k not in ONLY_SOME)
TokenField = Literal["in_tokens", "out_tokens", "cache_read_tokens", "cache_creation_tokens"]
TOKEN_FIELDS: tuple[TokenField, ...] = (
    "in_tokens",
    "out_tokens",
    "cache_read_tokens",
    "cache_creation_tokens",
)


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
        prefix = datetime.fromtimestamp(whole, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.")
        _second[:] = whole, prefix
    return f"{prefix}{us // 1000:03d}Z"


_BLANK = dict.fromkeys(FIELDS)


def new_record(rid: str, path: str, protocol_in: str = "anthropic") -> UsageRecord:
    """A record with every field present, as a request arrives."""
    record = _BLANK.copy()
    record["ts"] = utc_timestamp()
    record["rid"] = rid
    record["path"] = path
    record["protocol_in"] = protocol_in
    record["h2"] = False
    record["retries"] = record["bytes_in"] = record["bytes_out"] = 0
    return record  # type: ignore[return-value]  # (every key is set: _BLANK has them all)


def fail(record: UsageRecord, err_type: str, reason: str | None = None) -> None:
    """Mark the first failure (a later one does not replace it), and `reason` with it."""
    if not record["err_type"]:
        record["err_type"] = err_type
        if reason is not None:
            record["reason"] = reason


def set_tokens(record: UsageRecord | dict, tokens: dict) -> None:
    for key in TOKEN_FIELDS:
        value = tokens.get(key)
        if isinstance(value, int):
            record[key] = value


def record_line(record: Mapping[str, Any]) -> bytes:
    """One record as one compact UTF-8 JSON line (orjson, or json for what orjson refuses)."""
    if orjson is not None:
        try:
            return orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)
        except TypeError:  # e.g. a subclass of str it will not write, or an int past 64 bits
            pass
    return utf8(json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n")
