"""Step 3 of the pipeline: the provider's answer goes to the client, and the record notes what
crossed.

A passthrough (`relay_stream`, `relay_body`) writes each upstream chunk to the client the moment it
arrives, unchanged: no buffering of the whole body, no copies beyond what the SSE meter looks at.
A converted answer (`relay_converted_stream`, `relay_converted_body`) goes through the protocols'
`Conversion`, chunk by chunk for a stream, which always ends the client's stream cleanly — with
its normal ending or the protocol's error event; an upstream error body is mapped to the client
protocol's error shape with the same status. The Anthropic side is metered either way, so records
carry the same SSE counts and tokens. Every relay releases or closes the upstream response, so no
upstream connection outlives its request; how a stream ended is classified by
proxy.pipeline.outcome.
"""

from __future__ import annotations

import asyncio
import time
import zlib
from collections.abc import AsyncIterator, Awaitable

from proxy.core.convert.requests import json_bytes
from proxy.core.errors import UpstreamError, UpstreamTimeout, UpstreamTooLarge
from proxy.core.headers import client_response_headers
from proxy.core.record import ErrType, Reason, set_tokens
from proxy.core.sse import SseMeter, exact_loads, tokens_from_message
from proxy.pipeline.context import Downstream, Exchange
from proxy.pipeline.outcome import BREAKS, broken, ended, settle
from proxy.protocols import Conversion
from proxy.sinks.partials import KEEP_BYTES as PARTIAL_KEEP_BYTES
from proxy.upstream.base import UpstreamResponse, too_large

JSON = "application/json"
INCOMPLETE_MESSAGE = "the upstream's stream ended before its last event"
EVENT_STREAM = "text/event-stream"
# of a foreign protocol's response headers, only those that mean the same on both sides
_KEPT_ACROSS = ("request-id", "x-request-id", "retry-after")


def ms(start: float, end: float) -> float:
    return round((end - start) * 1000.0, 3)


def resp_ready(resp: UpstreamResponse) -> bool:
    """Whether the answer's next bytes (or its end) have arrived; False when the client cannot
    tell, as then nothing is held back."""
    return getattr(resp, "ready", False)


def resp_finished(resp: UpstreamResponse) -> bool:
    """Whether every byte of the answer has been handed over (False when the client cannot tell)."""
    return getattr(resp, "finished", False)


def kept_headers(upstream_headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(k, v) for k, v in upstream_headers if k.lower() in _KEPT_ACROSS]


def _declared_length(resp: UpstreamResponse) -> int:
    for name, value in resp.headers:  # (a loop: this runs per answer)
        if len(name) == 14 and name.lower() == "content-length":
            return int(value) if value.isdigit() else 0
    return 0


async def read_whole(ex: Exchange, resp: UpstreamResponse) -> bytes:
    """The whole upstream body, at most CCP_MAX_RESPONSE_BYTES of it (the clients stop reading
    there; an answer that says it is longer is not read at); the connection goes back to the
    pool, or is closed on failure.

    A stream request answered with a body that is not a stream (an error JSON, or a broken
    upstream's page) is held to the JSON answer's total time: the clients only watch a stream
    request's idle time, and a body that trickles in forever is never idle."""
    try:
        limit = ex.settings.max_response_bytes
        if _declared_length(resp) > limit:
            raise too_large(limit)
        if ex.stream and not resp.is_sse:
            try:
                async with asyncio.timeout(ex.settings.json_timeout):
                    data = await resp.read()
            except TimeoutError:
                raise UpstreamTimeout("upstream did not answer in time") from None
        else:
            data = await resp.read()
    except BaseException as exc:
        resp.close()
        if isinstance(exc, UpstreamTooLarge):
            ex.rec["reason"] = Reason.UPSTREAM_TOO_LARGE
        raise
    resp.release()
    ex.upstream_done = time.perf_counter()
    ex.upstream_body = data  # for trajectories and the signature book; a reference, no copy
    return data


# ---------------------------------------------------------------- passthrough
async def relay_body(
    ex: Exchange, resp: UpstreamResponse, headers: list[tuple[str, str]], down: Downstream
) -> None:
    """Read the whole upstream body and answer with it as it is."""
    data = await read_whole(ex, resp)
    if 200 <= resp.status < 300 and ex.rec["op"] is not None and _identity(headers):
        set_tokens(ex.rec, tokens_from_message(data))
    ex.rec["bytes_out"] = len(data)
    down.whole(resp.status, data, headers)


def _identity(headers: list[tuple[str, str]]) -> bool:
    return _content_encoding(headers) == "identity"


async def relay_stream(
    ex: Exchange, resp: UpstreamResponse, headers: list[tuple[str, str]], down: Downstream
) -> None:
    """Relay an SSE body chunk by chunk; account for how it ended."""
    rec = ex.rec
    meter = SseMeter()
    events = ex.events  # a session's trajectory (or the body tee) wants the raw events
    relayed: list[bytes] = []  # references, not copies: what a partial would hold
    kept = 0
    t_start = time.perf_counter()
    released = False
    inflight = ex.state.metrics.inflight_streams
    limit = ex.settings.max_response_bytes
    inflight.inc()
    try:
        await down.open_stream(resp.status, headers, resp_ready(resp))
        async for chunk in resp.chunks():
            if rec["ttfb_ms"] is None:
                rec["ttfb_ms"] = ms(ex.t0, time.perf_counter())
            if meter.bytes + len(chunk) > limit:  # cut before the chunk that crosses the limit
                raise too_large(limit)
            meter.feed(chunk)
            if events is not None:
                events.append(chunk)
            if kept < PARTIAL_KEEP_BYTES:
                relayed.append(chunk)
                kept += len(chunk)
            if resp_finished(resp) and meter.complete:  # the last bytes and the end, one write
                await down.write_last(chunk)
            else:
                await down.write(chunk)
        resp.release()
        released = True
        ex.upstream_done = time.perf_counter()
        ended(rec, meter.complete)
        if meter.complete:
            await down.end()
        else:  # the upstream ended short of its last event: the client is told, as a converted
            # stream tells it, rather than left with a stream that just stops
            await _tell_client(
                down, _after(meter, ex.protocol_in.stream_error("api_error", INCOMPLETE_MESSAGE))
            )
    except BREAKS as exc:
        told = broken(rec, exc)
        if told is not None:
            await _tell_client(down, _after(meter, ex.protocol_in.stream_error(*told)))
        elif not isinstance(exc, ConnectionError):
            raise
    finally:
        inflight.dec()
        if not released:
            resp.close()
        end = time.perf_counter()
        ex.upstream_done = ex.upstream_done or end
        rec["bytes_out"] = meter.bytes
        rec["sse"] = meter.summary(ms(t_start, end))
        ex.signatures = meter.signatures
        settle(ex, meter, relayed, meter.complete)


def _after(meter: SseMeter, event: bytes) -> bytes:
    """`event`, begun on a line of its own: a stream cut inside an event gets that event's end first,
    or the client's parser would read the error's lines as the rest of the broken one."""
    return b"\n\n" + event if meter.mid_event else event


async def _tell_client(down: Downstream, event: bytes) -> None:
    """Best effort: the client may be gone too."""
    try:
        await down.write(event)
        await down.end()
    except ConnectionError:
        pass


# ---------------------------------------------------------------- converted
async def relay_converted_body(
    ex: Exchange,
    resp: UpstreamResponse,
    conv: Conversion,
    headers: list[tuple[str, str]],
    down: Downstream,
    model: str,
) -> None:
    """Read the whole upstream body, convert it (or its error), answer in the client's protocol.

    An upstream error may be an answer on the client's side (`Conversion.recover`: a 400 that
    Anthropic answers 200); a JSON answer to a streaming request goes down as the stream that
    would have carried it."""
    rec = ex.rec
    data = await read_whole(ex, resp)
    upstream: dict = {}
    converted = conv.recover(resp.status, data, model) if resp.status >= 300 else None
    if resp.status >= 300 and converted is None:
        status, obj = conv.error(resp.status, data)
        ex.downstream = obj
        body = json_bytes(obj)
        rec["bytes_out"] = len(body)
        down.whole(status, body, headers, JSON)
        return
    if converted is not None:  # the provider's error is an answer on the client's side
        rec["status"] = 200
        rec["err_type"] = None
        rec["reason"] = Reason.MAX_TOKENS_REACHED
    else:
        try:
            upstream = exact_loads(data)
            converted = conv.answer(upstream, model, ex.stop_sequences, ex.tool_names)
        except ValueError as exc:  # not JSON, or not convertible: the upstream broke the protocol
            raise UpstreamError(f"upstream answer could not be converted: {exc}") from exc
    set_tokens(rec, conv.tokens(upstream, converted))
    ex.downstream = converted
    as_sse = conv.as_stream(rec["op"] == "stream")
    if as_sse is None:
        body = json_bytes(converted)
        down.whole(200, body, headers, JSON)
    else:  # a JSON answer to a streaming request: the stream that would have carried it
        body = as_sse(converted)
        meter = SseMeter()
        meter.feed(body)
        rec["sse"] = meter.summary(0.0)
        rec["reason"] = rec["reason"] or Reason.STREAMING
        down.whole(200, body, headers, EVENT_STREAM)
    rec["bytes_out"] = len(body)


async def relay_converted_stream(
    ex: Exchange,
    resp: UpstreamResponse,
    conv: Conversion,
    headers: list[tuple[str, str]],
    down: Downstream,
    model: str,
) -> None:
    """Convert an SSE stream as it arrives; the Anthropic side (up or down) is metered."""
    rec = ex.rec
    converter = conv.stream(model, ex.stop_sequences, ex.tool_names)
    meter_down = conv.meter_downstream
    meter = SseMeter()
    events = ex.events
    sent: list[bytes] = []
    t_start = time.perf_counter()
    released = False

    async def write(data: bytes) -> None:
        if meter_down:
            meter.feed(data)
        sent.append(data)
        await down.write(data)

    inflight = ex.state.metrics.inflight_streams
    limit = ex.settings.max_response_bytes
    size = 0
    inflight.inc()
    try:
        await down.open_stream(200, [("cache-control", "no-cache"), *headers], False, EVENT_STREAM)
        async for chunk in resp.chunks():
            if rec["ttfb_ms"] is None:
                rec["ttfb_ms"] = ms(ex.t0, time.perf_counter())
            size += len(chunk)
            if size > limit:
                raise too_large(limit)
            if events is not None:
                events.append(chunk)
            if not meter_down:
                meter.feed(chunk)
            out = converter.feed(chunk)
            if out:
                await write(out)
        resp.release()
        released = True
        ex.upstream_done = time.perf_counter()
        tail = converter.finish()
        if tail:
            await write(tail)
        ended(rec, converter.complete)
        await down.end()
    except BREAKS as exc:
        told = broken(rec, exc)
        if told is not None:  # close open blocks, end with the protocol's error event
            try:
                tail = converter.finish(told[1])
                if tail:
                    await write(tail)
                await down.end()
            except ConnectionError:
                pass
        elif not isinstance(exc, ConnectionError):
            raise
    finally:
        inflight.dec()
        if not released:
            resp.close()
        end = time.perf_counter()
        ex.upstream_done = ex.upstream_done or end
        rec["bytes_out"] = sum(len(c) for c in sent)
        rec["sse"] = meter.summary(ms(t_start, end))
        ex.downstream = {
            "message": getattr(converter, "message", None),
            "events": b"".join(sent).decode("utf-8", "replace"),
        }
        settle(ex, meter, sent, converter.complete)


# ---------------------------------------------------------------- a compressed answer
def _content_encoding(headers: list[tuple[str, str]]) -> str:
    for name, value in headers:
        if name.lower() == "content-encoding":
            return value.strip().lower()
    return "identity"


class _Decoded:
    """An upstream answer compressed although the shim asked for `identity` (a CDN in front of a
    provider may do so), decoded as it is read: the meter, the tokens, partials and trajectories
    then read the plain bytes, and the client gets them without a `content-encoding`."""

    __slots__ = ("_resp", "_z", "_encoding", "status", "headers", "h2")

    def __init__(self, resp: UpstreamResponse, encoding: str) -> None:
        self._resp = resp
        self._z = zlib.decompressobj(32 + zlib.MAX_WBITS)  # gzip or zlib, told by the header
        self._encoding = encoding
        self.status, self.h2 = resp.status, resp.h2
        self.headers = [
            (k, v)
            for k, v in resp.headers
            if k.lower() not in ("content-encoding", "content-length")
        ]

    @property
    def is_sse(self) -> bool:
        return self._resp.is_sse

    @property
    def ready(self) -> bool:
        return resp_ready(self._resp)

    @property
    def finished(self) -> bool:
        return resp_finished(self._resp)

    def _decode(self, data: bytes, last: bool = False) -> bytes:
        try:
            out = self._z.decompress(data)
            return out + self._z.flush() if last else out
        except zlib.error as exc:
            raise UpstreamError(
                f"the upstream's {self._encoding} body is not valid: {exc}"
            ) from None

    async def read(self) -> bytes:
        return self._decode(await self._resp.read(), last=True)

    async def chunks(self) -> AsyncIterator[bytes]:
        async for chunk in self._resp.chunks():
            out = self._decode(chunk)
            if out:
                yield out
        tail = self._decode(b"", last=True)
        if tail:
            yield tail

    def release(self) -> None:
        self._resp.release()

    def close(self) -> None:
        self._resp.close()


def decoded(resp: UpstreamResponse) -> UpstreamResponse:
    """`resp`, decoded when it came gzip or deflate; as it is otherwise (another encoding is
    relayed untouched, with its header, and no tokens are read from it)."""
    encoding = _content_encoding(resp.headers)
    return _Decoded(resp, encoding) if encoding in ("gzip", "x-gzip", "deflate") else resp


# ---------------------------------------------------------------- which one
def relay(
    ex: Exchange,
    resp: UpstreamResponse,
    conv: Conversion | None,
    ours: list[tuple[str, str]],
    down: Downstream,
    model: str,
) -> Awaitable[None]:
    """Passthrough or converted, stream or whole body: the relay to await. (A plain function
    handing back the chosen coroutine: every chunk of a stream resumes the whole chain of
    coroutines it runs in, and this one would be a link of it.)"""
    rec = ex.rec
    rec["upstream_status"] = rec["status"] = resp.status
    rec["h2"] = resp.h2
    resp = decoded(resp)
    if resp.status >= 400:
        rec["err_type"] = ErrType.UPSTREAM_5XX if resp.status >= 500 else ErrType.UPSTREAM_4XX
    streaming = resp.is_sse and resp.status < 300
    if conv is None:
        headers = client_response_headers(resp.headers) + ours
        if streaming:
            return relay_stream(ex, resp, headers, down)
        return relay_body(ex, resp, headers, down)
    if streaming:
        return relay_converted_stream(
            ex, resp, conv, kept_headers(resp.headers) + ours, down, model
        )
    return relay_converted_body(ex, resp, conv, kept_headers(resp.headers) + ours, down, model)
