"""Relaying an answer that must change protocol on the way (Anthropic ⇄ OpenAI).

The twin of `proxy.pipeline.relay` for routes whose provider speaks the other protocol: the whole body is
converted (`relay_converted_body`), or a stream is converted chunk by chunk as it arrives
(`relay_converted_stream`) by one of the `proxy.core.convert` stream converters, which always end the
downstream stream cleanly — with its normal ending or with an error event. Upstream error bodies are
mapped to the inbound protocol's error shape with the same status. The Anthropic side of the exchange
is metered with `SseMeter`, so records carry the same SSE counts and tokens as a passthrough.
"""
from __future__ import annotations

import asyncio
import time
from typing import Callable

from aiohttp import web

from proxy.core.convert.requests import json_bytes
from proxy.core.errors import UpstreamError
from proxy.core.record import set_tokens
from proxy.core.sse import SseMeter, exact_loads
from proxy.pipeline.relay import account_stream_end, ms, read_whole
from proxy.upstream.base import StreamIdle, UpstreamResponse

_KEEP = ("request-id", "x-request-id", "retry-after")


def _json_response(status: int, obj: object, extra: list[tuple[str, str]]) -> web.Response:
    out = web.Response(status=status, body=json_bytes(obj), content_type="application/json")
    for name, value in extra:
        out.headers.add(name, value)
    return out


def kept_headers(upstream_headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Of a foreign protocol's response headers, only those that mean the same on both sides."""
    return [(k, v) for k, v in upstream_headers if k.lower() in _KEEP]


async def relay_converted_body(resp: UpstreamResponse, headers: list[tuple[str, str]], rec: dict,
                               timing: dict, convert: Callable[[dict], dict],
                               convert_error: Callable[[int, bytes], tuple[int, dict]],
                               tokens_of: Callable[[dict, dict], dict],
                               recover: Callable[[int, bytes], dict | None] | None = None,
                               as_sse: Callable[[dict], bytes] | None = None) -> web.Response:
    """Read the whole upstream body, convert it (or its error), answer in the inbound protocol.

    `tokens_of(upstream, converted)` gives the record's tokens; `recover(status, body)` may turn an
    upstream error into a converted answer (a 400 that Anthropic would answer 200); `as_sse` writes
    a converted answer as the stream a streaming client asked for."""
    data = await read_whole(resp, timing)
    upstream: dict = {}
    converted = recover(resp.status, data) if resp.status >= 300 and recover is not None else None
    if resp.status >= 300 and converted is None:
        status, obj = convert_error(resp.status, data)
        timing["downstream"] = obj
        return _json_response(status, obj, headers)
    if converted is not None:  # the provider's error is an answer on the client's side
        rec.update(status=200, err_type=None, reason="max_tokens_reached")
    else:
        try:
            upstream = exact_loads(data)
            converted = convert(upstream)
        except ValueError as exc:  # not JSON, or not convertible: the upstream broke the protocol
            raise UpstreamError(f"upstream answer could not be converted: {exc}") from exc
    set_tokens(rec, tokens_of(upstream, converted))
    timing["downstream"] = converted
    if as_sse is None:
        out = _json_response(200, converted, headers)
    else:  # a JSON answer to a streaming request: the stream that would have carried it
        events = as_sse(converted)
        out = web.Response(status=200, body=events, content_type="text/event-stream")
        for name, value in headers:
            out.headers.add(name, value)
        meter = SseMeter()
        meter.feed(events)
        rec["sse"] = meter.summary(0.0)
        rec["reason"] = rec.get("reason") or "streaming"
    rec["bytes_out"] = len(out.body)
    return out


async def relay_converted_stream(request: web.Request, resp: UpstreamResponse,
                                 headers: list[tuple[str, str]], rec: dict, timing: dict,
                                 converter, meter_downstream: bool) -> web.StreamResponse:
    """Convert an SSE stream as it arrives; the Anthropic side (up or down) is metered."""
    out = web.StreamResponse(status=200)
    out.content_type = "text/event-stream"
    out.headers["cache-control"] = "no-cache"
    for name, value in headers:
        out.headers.add(name, value)
    meter = SseMeter()
    tee_up: list[bytes] | None = timing.get("tee")
    tee_down: list[bytes] = []
    t_start = time.perf_counter()
    released = False
    try:
        await out.prepare(request)
        async for chunk in resp.chunks():
            if rec["ttfb_ms"] is None:
                rec["ttfb_ms"] = ms(timing["t0"], time.perf_counter())
            if tee_up is not None:
                tee_up.append(chunk)
            if not meter_downstream:
                meter.feed(chunk)
            converted = converter.feed(chunk)
            if converted:
                await _write(out, converted, meter, meter_downstream, tee_down)
        resp.release()
        released = True
        timing["upstream_done"] = time.perf_counter()
        tail = converter.finish()
        if tail:
            await _write(out, tail, meter, meter_downstream, tee_down)
        if not converter.complete:
            rec["err_type"] = rec["err_type"] or "net"
            rec["reason"] = "stream_incomplete"
        await out.write_eof()
    except StreamIdle as exc:
        rec["err_type"], rec["reason"] = exc.err_type, "stream_timeout"
        await _finish_with_error(out, converter, exc.message, meter, meter_downstream, tee_down)
    except UpstreamError as exc:
        rec["err_type"], rec["reason"] = exc.err_type, "upstream_reset"
        await _finish_with_error(out, converter, exc.message, meter, meter_downstream, tee_down)
    except (ConnectionError, asyncio.CancelledError) as exc:
        rec["err_type"], rec["reason"] = "client_abort", "client_disconnected"
        if isinstance(exc, asyncio.CancelledError):
            raise
    finally:
        if not released:
            resp.close()
        end = time.perf_counter()
        timing["upstream_done"] = timing["upstream_done"] or end
        rec["bytes_out"] = sum(len(c) for c in tee_down)
        rec["sse"] = meter.summary(ms(t_start, end))
        timing["downstream"] = {"message": getattr(converter, "message", None),
                                "events": b"".join(tee_down).decode("utf-8", "replace")}
        account_stream_end(rec, meter, timing, tee_down, converter.complete)
    if rec["reason"] is None:
        rec["reason"] = "streaming"
    return out


async def _write(out: web.StreamResponse, data: bytes, meter: SseMeter, meter_downstream: bool,
                 tee_down: list[bytes]) -> None:
    if meter_downstream:
        meter.feed(data)
    tee_down.append(data)
    await out.write(data)


async def _finish_with_error(out: web.StreamResponse, converter, message: str, meter: SseMeter,
                             meter_downstream: bool, tee_down: list[bytes]) -> None:
    """Close open blocks and end with the protocol's error event; the client may be gone too."""
    try:
        tail = converter.finish(message)
        if tail:
            await _write(out, tail, meter, meter_downstream, tee_down)
        await out.write_eof()
    except ConnectionError:
        pass
