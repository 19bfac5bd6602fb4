"""relay_stream over the shim's own HTTP/1.1 client: headers are held back only while the first
chunk is already there, and an answer that came whole ends with its last chunk."""
import asyncio
import json
import time

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from proxy import protocols
from proxy.config.settings import Settings
from proxy.core.errors import UpstreamError
from proxy.core.record import new_record
from proxy.pipeline.context import Exchange
from proxy.pipeline.relay import (
    kept_headers,
    relay_converted_body,
    relay_converted_stream,
    relay_stream,
)
from proxy.pipeline.state import ShimState
from proxy.server.app import AiohttpDownstream
from proxy.upstream.base import UpstreamRequest
from proxy.upstream.h1 import H1Upstream

pytestmark = pytest.mark.quick

EVENTS = (b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":"
          b"{\"input_tokens\":3,\"output_tokens\":1}}}\n\n"
          b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\"}\n\n"
          b"event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":5}}\n\n"
          b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n")


def exchange(path: str = "/v1/messages") -> Exchange:
    """An exchange as the front door starts one (its partials, if any, under a throwaway logs)."""
    import tempfile
    state = ShimState(Settings(logs_dir=tempfile.mkdtemp(prefix="ccp-relay-")), None)
    return Exchange(state, state.settings, new_record("rid-1", path), protocols.get("anthropic"),
                    time.perf_counter())


async def _relay_through(upstream_script, client_side):
    """A raw upstream running `upstream_script`, the shim's relay in front of it, and
    `client_side(session, url, record)` as the client; returns what client_side returns."""
    done = []

    async def upstream(reader, writer):
        try:
            await reader.readuntil(b"\r\n\r\n")
            await reader.readexactly(2)
            await upstream_script(writer)
            await reader.read()  # until the shim's client closes the connection
        finally:
            writer.close()
            done.append(True)

    raw = await asyncio.start_server(upstream, "127.0.0.1", 0)
    up_url = f"http://127.0.0.1:{raw.sockets[0].getsockname()[1]}"
    client = H1Upstream(Settings())
    await client.start()
    records = []

    async def handler(request):
        resp = await client.send(UpstreamRequest("POST", up_url + "/v1/messages", {}, b"{}", True))
        ex = exchange()
        records.append(ex.rec)
        down = AiohttpDownstream(request)
        await relay_stream(ex, resp, [("content-type", "text/event-stream")], down)
        return down.response

    app = web.Application()
    app.router.add_post("/v1/messages", handler)
    try:
        async with TestServer(app) as server, aiohttp.ClientSession() as session:
            return await client_side(session, str(server.make_url("/v1/messages")), records)
    finally:
        await client.close()
        raw.close()
        for _ in range(200):  # the upstream's handler sees the close and ends
            if done:
                break
            await asyncio.sleep(0.005)


def test_headers_reach_the_client_before_a_slow_first_event():
    gate = asyncio.Event()

    async def script(writer):
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                     b"transfer-encoding: chunked\r\n\r\n")
        await writer.drain()
        await gate.wait()  # the first event waits until the client has seen the headers
        writer.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(EVENTS), EVENTS))
        await writer.drain()

    async def client_side(session, url, records):
        async with session.post(url, data=b"{}") as resp:  # returns once headers arrived
            status = resp.status
            gate.set()
            body = await resp.read()
        return status, body, records[0]

    async def main():
        return await asyncio.wait_for(_relay_through(script, client_side), 10)

    status, body, rec = asyncio.run(main())
    assert (status, body) == (200, EVENTS)
    assert (rec["in_tokens"], rec["out_tokens"], rec["sse"]["complete"]) == (3, 5, True)


def test_an_answer_that_came_whole_is_relayed_whole_in_pieces_or_not():
    async def whole(writer):
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                     b"transfer-encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(EVENTS), EVENTS))
        await writer.drain()

    async def split(writer):  # the end arrives apart from the last chunk
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                     b"transfer-encoding: chunked\r\n\r\n%x\r\n%s\r\n" % (len(EVENTS), EVENTS))
        await writer.drain()
        await asyncio.sleep(0.05)  # (the upstream's pace, not a synchronisation)
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    async def client_side(session, url, records):
        async with session.post(url, data=b"{}") as resp:
            return resp.status, await resp.read(), records[0]

    for script in (whole, split):
        status, body, rec = asyncio.run(_relay_through(script, client_side))
        assert (status, body) == (200, EVENTS)
        assert rec["sse"]["complete"] and rec["reason"] == "streaming" and rec["err_type"] is None


# ---------------------------------------------------------------- converted relays
CHUNKS = [b'data: {"id":"c1","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}\n\n',
          b'data: {"id":"c1","choices":[{"index":0,"delta":{"content":"Hel"}}]}\n\n',
          b'data: {"id":"c1","choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":"stop"}]}\n\n',
          b'data: {"id":"c1","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2}}\n\n',
          b"data: [DONE]\n\n"]


class Fake:
    def __init__(self, status, chunks, fail_after=None):
        self.status, self.headers, self.h2 = status, [("request-id", "r1"), ("server", "x")], False
        self._chunks, self._fail_after = chunks, fail_after

    @property
    def is_sse(self):
        return True

    async def chunks(self):
        for i, c in enumerate(self._chunks):
            if i == self._fail_after:
                raise UpstreamError("reset")
            yield c

    async def read(self):
        return b"".join(self._chunks)

    def release(self):
        pass

    def close(self):
        pass


def _serve(handler_body):
    async def main():
        app = web.Application()
        app.router.add_post("/", handler_body)
        async with TestClient(TestServer(app)) as client:
            resp = await client.post("/")
            return resp.status, await resp.read()
    return asyncio.run(main())


OPENAI_PROVIDER = protocols.conversion("anthropic", "openai")


@pytest.mark.parametrize("fail_after", [None, 2])
def test_stream_is_converted_and_always_ends_cleanly(fail_after):
    ex = exchange()
    rec = ex.rec

    async def handler(request):
        down = AiohttpDownstream(request)
        await relay_converted_stream(ex, Fake(200, CHUNKS, fail_after), OPENAI_PROVIDER, [], down, "m")
        return down.response

    status, body = _serve(handler)
    events = [line[7:] for line in body.decode().splitlines() if line.startswith("event: ")]
    assert status == 200 and events[0] == "message_start"
    if fail_after is None:
        assert events[-1] == "message_stop" and rec["sse"]["complete"] and rec["out_tokens"] == 2
        assert rec["reason"] == "streaming"
    else:
        assert events[-1] == "error" and rec["err_type"] == "net" and rec["reason"] == "upstream_reset"
    assert ex.downstream["events"] == body.decode()


def test_body_and_error_conversion():
    ex = exchange()
    rec = ex.rec
    ok = json.dumps({"id": "c1", "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"},
                                              "finish_reason": "stop"}],
                     "usage": {"prompt_tokens": 3, "completion_tokens": 1}}).encode()

    async def handler(request):
        down = AiohttpDownstream(request)
        await relay_converted_body(ex, Fake(200, [ok]), OPENAI_PROVIDER, [], down, "m")
        return down.response

    status, body = _serve(handler)
    assert status == 200 and json.loads(body)["content"][0]["text"] == "hi" and rec["in_tokens"] == 3

    async def failing(request):
        down = AiohttpDownstream(request)
        await relay_converted_body(exchange(), Fake(429, [b'{"error":{"message":"slow down"}}']),
                                   OPENAI_PROVIDER, [], down, "m")
        return down.response

    status, body = _serve(failing)
    assert status == 429 and json.loads(body)["error"] == {"type": "rate_limit_error", "message": "slow down"}


def test_kept_headers():
    assert kept_headers([("Retry-After", "1"), ("content-type", "x"), ("x-request-id", "r")]) == \
        [("Retry-After", "1"), ("x-request-id", "r")]


def _gz(data, chunked=False):
    import zlib
    z = zlib.compressobj(wbits=31)
    return [z.compress(data) + z.flush(zlib.Z_SYNC_FLUSH), z.flush()] if chunked else \
        z.compress(data) + z.flush()


@pytest.mark.parametrize("encoding", ["gzip", "x-gzip", "deflate"])
def test_a_compressed_answer_is_decoded_whole_and_chunk_by_chunk(encoding):
    import zlib

    from proxy.pipeline.relay import decoded
    body = b'{"type":"message","usage":{"input_tokens":3,"output_tokens":2}}'
    packed = _gz(body) if encoding != "deflate" else zlib.compress(body)
    whole = Fake(200, [packed])
    whole.headers = [("Content-Encoding", encoding), ("content-length", "9"), ("request-id", "r")]
    out = decoded(whole)
    assert asyncio.run(out.read()) == body and out.headers == [("request-id", "r")]
    events = b"event: ping\ndata: {}\n\n" * 50
    stream = Fake(200, _gz(events, chunked=True))
    stream.headers = [("content-encoding", "gzip")]

    async def take(resp):
        return [c async for c in resp.chunks()]

    assert b"".join(asyncio.run(take(decoded(stream)))) == events


def test_an_identity_or_unknown_encoding_is_left_as_it_is_and_a_broken_one_is_an_upstream_error():
    from proxy.pipeline.relay import decoded
    plain, br = Fake(200, [b"x"]), Fake(200, [b"x"])
    br.headers = [("content-encoding", "br")]
    assert decoded(plain) is plain and decoded(br) is br
    bad = Fake(200, [b"not gzip at all"])
    bad.headers = [("content-encoding", "gzip")]
    with pytest.raises(UpstreamError, match="gzip body is not valid"):
        asyncio.run(decoded(bad).read())


def test_a_stream_with_crlf_line_ends_split_anywhere_is_relayed_byte_for_byte():
    body = EVENTS.replace(b"\n", b"\r\n")
    pieces = [body[i:i + 7] for i in range(0, len(body), 7)]  # splits inside a CRLF too
    ex = exchange()

    async def handler(request):
        down = AiohttpDownstream(request)
        await relay_stream(ex, Fake(200, pieces), [("content-type", "text/event-stream")], down)
        return down.response

    status, got = _serve(handler)
    assert (status, got) == (200, body)
    assert ex.rec["sse"]["complete"] and ex.rec["bytes_out"] == len(body)
    assert (ex.rec["in_tokens"], ex.rec["out_tokens"]) == (3, 5)


def test_a_stream_that_ends_short_of_message_stop_ends_with_an_error_event_to_the_client():
    short = EVENTS[:EVENTS.index(b"event: message_stop")]
    ex = exchange()

    async def handler(request):
        down = AiohttpDownstream(request)
        await relay_stream(ex, Fake(200, [short]), [("content-type", "text/event-stream")], down)
        return down.response

    status, got = _serve(handler)
    assert status == 200 and got.startswith(short)
    tail = got[len(short):].decode()
    assert tail.startswith("event: error\n") and '"type":"api_error"' in tail.replace(" ", "")
    assert ex.rec["reason"] == "stream_incomplete" and ex.rec["err_type"] == "net"


def test_a_whole_answer_is_relayed_as_it_came_and_its_tokens_are_recorded():
    from proxy.pipeline.relay import relay_body
    body = (b'{"type":"message","content":[],"usage":{"input_tokens":7,"output_tokens":4,'
            b'"cache_read_input_tokens":2,"cache_creation_input_tokens":1}}')
    ex = exchange()
    ex.rec["op"] = "nonstream"
    whole = Fake(200, [body])
    whole.headers = [("content-type", "application/json")]

    async def handler(request):
        down = AiohttpDownstream(request)
        await relay_body(ex, whole, whole.headers, down)
        return down.response

    assert _serve(handler) == (200, body)
    rec = ex.rec
    assert (rec["in_tokens"], rec["out_tokens"], rec["cache_read_tokens"],
            rec["cache_creation_tokens"], rec["bytes_out"]) == (7, 4, 2, 1, len(body))


def test_a_converted_stream_without_done_still_ends_with_the_converters_last_events():
    """An OpenAI provider that closes after its last chunk but sends no `[DONE]`: the events the
    converter makes at the end (message_delta, message_stop) still reach the client."""
    ex = exchange()

    async def handler(request):
        down = AiohttpDownstream(request)
        await relay_converted_stream(ex, Fake(200, CHUNKS[:-1]), OPENAI_PROVIDER, [], down, "m")
        return down.response

    status, body = _serve(handler)
    events = [line[7:] for line in body.decode().splitlines() if line.startswith("event: ")]
    assert status == 200 and events[-2:] == ["message_delta", "message_stop"], events
    assert ex.downstream["events"] == body.decode()


@pytest.mark.parametrize(("status", "err_type"), [
    (500, "upstream_5xx"), (503, "upstream_5xx"), (400, "upstream_4xx"), (429, "upstream_4xx")])
def test_an_upstream_error_status_is_relayed_and_recorded_by_whose_fault(status, err_type):
    from proxy.pipeline.relay import relay
    ex = exchange()
    body = b'{"type":"error","error":{"type":"api_error","message":"x"}}'
    resp = Fake(status, [body])
    resp.headers = [("content-type", "application/json")]

    async def handler(request):
        down = AiohttpDownstream(request)
        await relay(ex, resp, None, [], down, "m")
        return down.response

    assert _serve(handler) == (status, body)
    assert (ex.rec["status"], ex.rec["upstream_status"], ex.rec["err_type"]) == (
        status, status, err_type)


def test_a_stream_request_answered_by_a_trickling_body_is_cut_at_the_json_timeout(tmp_path):
    """The clients watch only a stream request's idle time: a non-stream body that never ends
    is the shim's to cut, at CCP_JSON_TIMEOUT."""
    from proxy.core.errors import UpstreamTimeout
    from proxy.pipeline.relay import read_whole
    state = ShimState(Settings(logs_dir=str(tmp_path), json_timeout=0.05), None)
    ex = Exchange(state, state.settings, new_record("rid-1", "/v1/messages"),
                  protocols.get("anthropic"), time.perf_counter())
    ex.stream = True

    class Trickle(Fake):
        is_sse = False
        closed = False

        async def read(self):
            await asyncio.Event().wait()  # never ends (the timeout's to end it)

        def close(self):
            self.closed = True

    async def bounded():  # the test's own deadline: a cut that never comes fails, never hangs
        try:
            async with asyncio.timeout(5.0):
                await read_whole(ex, resp)
        except UpstreamTimeout as exc:
            return exc
        except TimeoutError:
            return None

    resp = Trickle(200, [])
    assert isinstance(asyncio.run(bounded()), UpstreamTimeout)
    assert resp.closed
