"""Relaying an upstream answer to the client, and noting what crossed.

`relay_stream()` writes each upstream chunk to the client the moment it arrives, unchanged: no
buffering of the whole body, no per-chunk copies beyond what the SSE meter looks at. When the stream
breaks it tells the client with an Anthropic `error` event and records why. `relay_body()` does the
same for a whole (non-SSE) body. Both always release or close the upstream response, so no upstream
connection outlives its request.
"""
from __future__ import annotations

import asyncio
import time

from aiohttp import web

from proxy.core.errors import UpstreamError
from proxy.core.record import set_tokens
from proxy.core.sse import SseMeter, error_event, tokens_from_message
from proxy.sinks.partials import KEEP_BYTES as PARTIAL_KEEP_BYTES
from proxy.upstream.base import StreamIdle, UpstreamResponse


class _RelayedStream(web.StreamResponse):
    """A relayed stream whose headers leave with its first chunk when that is already here, and
    whose last chunk leaves with the end of the body: an upstream answer that came in one piece
    (as a short one does) reaches the client in one write instead of three."""

    _send_headers_immediately = False  # (aiohttp's switch; its Response sets it so too)


def resp_ready(resp: UpstreamResponse) -> bool:
    """Whether the answer's next bytes (or its end) have arrived; False when the client cannot
    tell, as then nothing is held back."""
    return getattr(resp, "ready", False)


def resp_finished(resp: UpstreamResponse) -> bool:
    """Whether every byte of the answer has been handed over (False when the client cannot tell)."""
    return getattr(resp, "finished", False)


def ms(start: float, end: float) -> float:
    return round((end - start) * 1000.0, 3)


async def read_whole(resp: UpstreamResponse, timing: dict) -> bytes:
    """The whole upstream body; the connection goes back to the pool, or is closed on failure."""
    try:
        data = await resp.read()
    except BaseException:
        resp.close()
        raise
    resp.release()
    timing["upstream_done"] = time.perf_counter()
    timing["body"] = data  # for trajectories and the signature book; no copy, a reference
    return data


async def relay_body(resp: UpstreamResponse, headers: list[tuple[str, str]], rec: dict,
                     timing: dict) -> web.Response:
    """Read the whole upstream body and answer with it as it is."""
    data = await read_whole(resp, timing)
    if 200 <= resp.status < 300 and rec.get("op") is not None:
        if _encoding(headers) == "identity":
            set_tokens(rec, tokens_from_message(data))
    rec["bytes_out"] = len(data)
    return web.Response(status=resp.status, body=data, headers=headers)


def _encoding(headers: list[tuple[str, str]]) -> str:
    for name, value in headers:
        if name.lower() == "content-encoding":
            return value
    return "identity"


async def relay_stream(request: web.Request, resp: UpstreamResponse,
                       headers: list[tuple[str, str]], rec: dict, timing: dict) -> web.StreamResponse:
    """Relay an SSE body chunk by chunk; account for how it ended."""
    out = _RelayedStream(status=resp.status, headers=headers)
    meter = SseMeter()
    tee: list[bytes] | None = timing.get("tee")  # a session's trajectory wants the raw events
    relayed: list[bytes] = []  # references, not copies: what a partial would hold
    kept = 0
    t_start = time.perf_counter()
    released = False
    try:
        await out.prepare(request)
        if not resp_ready(resp):  # the first chunk is not here yet: the client has the headers now
            await out.write(b"")
        async for chunk in resp.chunks():
            if rec["ttfb_ms"] is None:
                rec["ttfb_ms"] = ms(timing["t0"], time.perf_counter())
            meter.feed(chunk)
            if tee is not None:
                tee.append(chunk)
            if kept < PARTIAL_KEEP_BYTES:
                relayed.append(chunk)
                kept += len(chunk)
            if resp_finished(resp):  # the upstream's last bytes: they and the end in one write
                await out.write_eof(chunk)
            else:
                await out.write(chunk)
        resp.release()
        released = True
        timing["upstream_done"] = time.perf_counter()
        if not meter.complete:
            rec["err_type"] = rec["err_type"] or "net"
            rec["reason"] = "stream_incomplete"
        await out.write_eof()
    except StreamIdle as exc:
        rec["err_type"] = exc.err_type
        rec["reason"] = "stream_timeout"
        await _tell_client(out, "timeout_error", exc.message)
    except UpstreamError as exc:
        rec["err_type"] = exc.err_type
        rec["reason"] = "upstream_reset"
        await _tell_client(out, "api_error", exc.message)
    except (ConnectionError, asyncio.CancelledError) as exc:
        rec["err_type"] = "client_abort"
        rec["reason"] = "client_disconnected"
        if isinstance(exc, asyncio.CancelledError):
            raise
    finally:
        if not released:
            resp.close()
        end = time.perf_counter()
        timing["upstream_done"] = timing["upstream_done"] or end
        rec["bytes_out"] = meter.bytes
        rec["sse"] = meter.summary(ms(t_start, end))
        timing["signatures"] = meter.signatures
        account_stream_end(rec, meter, timing, relayed, meter.complete)
    if rec["reason"] is None:
        rec["reason"] = "streaming"
    return out


def account_stream_end(rec: dict, meter: SseMeter, timing: dict, relayed: list[bytes],
                       complete: bool) -> None:
    """What every relayed stream records at its end: tokens, an in-band error, a partial."""
    set_tokens(rec, {"in_tokens": meter.in_tokens, "out_tokens": meter.out_tokens,
                     "cache_read_tokens": meter.cache_read_tokens,
                     "cache_creation_tokens": meter.cache_creation_tokens})
    if meter.error_type and not rec["err_type"]:
        rec["err_type"] = "upstream_5xx" if meter.error_type in ("api_error", "overloaded_error") \
            else "upstream_4xx"
        rec["reason"] = f"sse_error:{meter.error_type}"
    if rec["err_type"] and not complete:
        save_partial(timing, rec, relayed)


def save_partial(timing: dict, rec: dict, chunks: list[bytes]) -> None:
    """Keep what a broken stream relayed (the app supplies where and how, via `timing`)."""
    save = timing.get("save_partial")
    if save is None:
        return
    try:
        rec["partial"] = str(save(rec["rid"], chunks))
    except OSError:
        rec["partial"] = None


async def _tell_client(out: web.StreamResponse, error_type: str, message: str) -> None:
    """Best effort: the client may be gone too."""
    try:
        await out.write(error_event(error_type, message))
        await out.write_eof()
    except ConnectionError:
        pass
