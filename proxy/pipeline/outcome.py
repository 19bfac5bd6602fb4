"""How a relayed answer ended, written into its record: the one classification of a stream's end.

Every stream the pipeline relays, passthrough or converted, ends here: `broken()` when something
raised while it was relayed (the upstream went quiet, the upstream broke, the client left),
`ended()` when the upstream's body ended (whole, or short of its last event), and `settle()` for
what every stream records last: its tokens, an in-band `error` event, the partial of a stream that
broke, and `reason` `streaming` when nothing else was said.
"""

from __future__ import annotations

import asyncio

from proxy.core.errors import UpstreamError, UpstreamTooLarge
from proxy.core.record import (
    ErrType,
    Reason,
    UsageRecord,
    err_type_of_sse_error,
    fail,
    set_tokens,
    sse_error_reason,
)
from proxy.core.sse import SseMeter
from proxy.pipeline.context import Exchange
from proxy.upstream.base import StreamIdle

# what the client is told when the upstream side broke: (error type of the event, message)
Told = tuple[str, str]


def broken(rec: UsageRecord, exc: BaseException) -> Told | None:
    """Classify what broke a stream; the error event to end the client's stream with (None: the
    client is gone, nothing to tell). Anything else is not a stream's end: it propagates."""
    if isinstance(exc, StreamIdle):
        rec["err_type"], rec["reason"] = exc.err_type, Reason.STREAM_TIMEOUT
        return "timeout_error", exc.message
    if isinstance(exc, UpstreamTooLarge):  # cut by the shim: CCP_MAX_RESPONSE_BYTES
        rec["err_type"], rec["reason"] = exc.err_type, Reason.UPSTREAM_TOO_LARGE
        return "api_error", exc.message
    if isinstance(exc, UpstreamError):
        rec["err_type"], rec["reason"] = exc.err_type, Reason.UPSTREAM_RESET
        return "api_error", exc.message
    if isinstance(exc, (ConnectionError, asyncio.CancelledError)):
        rec["err_type"], rec["reason"] = ErrType.CLIENT_ABORT, Reason.CLIENT_DISCONNECTED
        return None
    raise exc


BREAKS = (StreamIdle, UpstreamError, ConnectionError, asyncio.CancelledError)


def ended(rec: UsageRecord, complete: bool) -> None:
    """The upstream's body ended; short of its final event, the stream is incomplete."""
    if not complete:
        fail(rec, ErrType.NET)
        rec["reason"] = Reason.STREAM_INCOMPLETE


def settle(ex: Exchange, meter: SseMeter, relayed: list[bytes], complete: bool) -> None:
    """What every relayed stream records at its end: tokens, an in-band error, a partial."""
    rec = ex.rec
    set_tokens(
        rec,
        {
            "in_tokens": meter.in_tokens,
            "out_tokens": meter.out_tokens,
            "cache_read_tokens": meter.cache_read_tokens,
            "cache_creation_tokens": meter.cache_creation_tokens,
        },
    )
    if meter.error_type and not rec["err_type"]:
        rec["err_type"] = err_type_of_sse_error(meter.error_type)
        rec["reason"] = sse_error_reason(meter.error_type)
    if rec["err_type"] and not complete:
        rec["partial"] = ex.save_partial(relayed)
    if rec["reason"] is None:
        rec["reason"] = Reason.STREAMING
