"""The aiohttp upstream client (CCP_UPSTREAM_CLIENT=aiohttp) against a local aiohttp server: how
chunks, headers and errors leave the seam. The shim's own h1 client runs the same checks beside it,
so the A/B baseline and the default cleartext client are held to one contract."""
import asyncio
import json
import socket

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from proxy.config.load import load_settings
from proxy.core.errors import UpstreamError, UpstreamTimeout
from proxy.upstream.aiohttp_client import AiohttpUpstream
from proxy.upstream.base import StreamIdle, UpstreamRequest
from proxy.upstream.h1 import H1Upstream

pytestmark = pytest.mark.quick

CLIENTS = {"aiohttp": AiohttpUpstream, "h1": H1Upstream}


async def _sse(request):
    resp = web.StreamResponse(headers={"content-type": "text/event-stream", "content-encoding": "gzip"})
    await resp.prepare(request)
    await resp.write(b"event: ping\ndata: {}\n\n")
    if request.query.get("stall"):
        await asyncio.sleep(5)  # the server side of a stall; the client's idle timeout ends it first
    return resp


async def _slow_headers(request):
    await asyncio.sleep(5)
    return web.Response()


async def _echo_headers(request):
    await request.read()
    return web.json_response([[k.lower(), v] for k, v in request.headers.items()])


async def _json(request):
    return web.json_response({"usage": {}}, status=201)


@pytest.fixture(params=list(CLIENTS))
def client_kind(request):
    return request.param


def _run(env, fn, kind="aiohttp"):
    async def main():
        app = web.Application()
        app.router.add_post("/sse", _sse)
        app.router.add_post("/echo", _echo_headers)
        app.router.add_post("/slow", _slow_headers)
        app.router.add_post("/json", _json)
        async with TestServer(app) as server:
            client = CLIENTS[kind](load_settings(env))
            await client.start()
            try:
                return await fn(client, str(server.make_url("")).rstrip("/"))
            finally:
                await client.close()
    return asyncio.run(main())


def test_stream_chunks_and_headers_untouched(client_kind):
    async def go(client, base):
        resp = await client.send(UpstreamRequest("POST", base + "/sse", {}, b"{}", True))
        chunks = [c async for c in resp.chunks()]
        resp.release()
        return resp, b"".join(chunks)

    resp, body = _run({}, go, client_kind)
    assert resp.is_sse and body == b"event: ping\ndata: {}\n\n"
    assert ("content-encoding", "gzip") in resp.headers  # passed on, never decoded by the shim


def test_the_upstream_gets_the_shims_headers_and_none_of_aiohttps_own(client_kind):
    async def go(client, base):
        resp = await client.send(UpstreamRequest(
            "POST", base + "/echo", {"content-type": "application/json", "x-api-key": "k"}, b"{}",
            False))
        body = await resp.read()
        resp.release()
        return body

    names = [name for name, _ in json.loads(_run({}, go, client_kind))]
    assert sorted(names) == ["content-length", "content-type", "host", "x-api-key"]


def test_idle_stream_raises_stream_idle(client_kind):
    async def go(client, base):
        resp = await client.send(UpstreamRequest("POST", base + "/sse?stall=1", {}, b"{}", True))
        with pytest.raises(StreamIdle):
            async for _ in resp.chunks():
                pass
        resp.close()

    _run({"CCP_SSE_IDLE_TIMEOUT": "200ms"}, go, client_kind)


def test_header_timeout_and_unreachable(client_kind):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]

    async def go(client, base):
        with pytest.raises(UpstreamTimeout):
            await client.send(UpstreamRequest("POST", base + "/slow", {}, b"{}", False))
        with pytest.raises(UpstreamError) as info:
            await client.send(UpstreamRequest("POST", f"http://127.0.0.1:{closed}/x", {}, b"", False))
        assert not isinstance(info.value, UpstreamTimeout)
        assert f"127.0.0.1:{closed}" in info.value.message

    _run({"CCP_HEADER_TIMEOUT": "200ms"}, go, client_kind)


def test_a_json_answer_keeps_its_status_and_raw_headers_and_is_never_http2():
    async def go(client, base):
        resp = await client.send(UpstreamRequest("POST", base + "/json", {}, b"{}", False))
        body = await resp.read()
        resp.release()
        return resp, body

    resp, body = _run({}, go)
    assert (resp.status, resp.h2, resp.is_sse) == (201, False, False)
    assert json.loads(body) == {"usage": {}}
    assert ("Content-Type", "application/json; charset=utf-8") in resp.headers  # as sent, case kept


def test_a_body_cut_short_is_an_upstream_error_not_a_short_answer():
    async def cut(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                     b"content-length: 100\r\n\r\n{\"usa")
        await writer.drain()
        writer.close()

    async def main():
        server = await asyncio.start_server(cut, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1/messages"
        client = AiohttpUpstream(load_settings({}))
        await client.start()
        try:
            resp = await client.send(UpstreamRequest("POST", url, {}, b"{}", False))
            with pytest.raises(UpstreamError, match="^upstream body broke: "):
                await resp.read()
            resp.close()
        finally:
            await client.close()
            server.close()

    asyncio.run(main())


def test_send_before_start_is_a_programming_error():
    client = AiohttpUpstream(load_settings({}))
    with pytest.raises(AssertionError, match="start"):
        asyncio.run(client.send(UpstreamRequest("POST", "http://127.0.0.1:9/x", {}, b"", False)))
    asyncio.run(client.close())  # closing a client that never started is fine


def test_an_answer_past_max_response_bytes_is_cut(client_kind):
    from proxy.core.errors import UpstreamTooLarge

    async def go(client, base):
        resp = await client.send(UpstreamRequest("POST", base + "/json", {}, b"{}", False))
        with pytest.raises(UpstreamTooLarge, match="CCP_MAX_RESPONSE_BYTES"):
            await resp.read()  # {"usage": {}}: 13 bytes
        resp.close()

    _run({"CCP_MAX_RESPONSE_BYTES": "8"}, go, client_kind)


@pytest.fixture(scope="module")
def phases():
    from harness.phase_mock import PhaseMock

    with PhaseMock(tls=True) as mock:
        yield mock


def _phase_run(phases, fn, *plan, trusted=True):
    """fn(client, base_url) with an aiohttp client against the phase mock, `plan` queued."""
    phases.wait_for(lambda: phases.open_connections() == 0, what="the last test's connections")
    phases.reset()
    phases.plan(*plan)

    async def main():
        client = AiohttpUpstream(load_settings({"CCP_CA_BUNDLE": phases.ca_path} if trusted else {}))
        await client.start()
        try:
            return await fn(client, phases.base_url)
        finally:
            await client.close()
    return asyncio.run(main())


def _nonce_req(base, nonce):
    return UpstreamRequest("POST", base + "/v1/messages", {"content-type": "application/json"},
                           b'{"model":"m","n":"%s"}' % nonce.encode(), False)


@pytest.mark.parametrize("phase", ["refuse", "tls_close"])
def test_a_connection_broken_before_anything_was_written_is_tried_once_more(phases, phase):
    async def go(client, base):
        resp = await client.send(_nonce_req(base, "nonce-a1"))
        body = await resp.read()
        resp.release()
        return resp.status, body

    status, body = _phase_run(phases, go, phase, "ok")
    assert status == 200 and json.loads(body)["type"] == "message"
    assert phases.copies("nonce-a1") == 1 and phases.pending == []
    assert phases.connections == 2 and phases.handshakes == 1


@pytest.mark.parametrize(("plan", "connections", "copies"), [
    (("refuse", "tls_close", "ok"), 2, 0),  # a second broken handshake is the answer
    (("mid_write", "ok"), 1, 0),  # bytes of it left: never again
    (("after_write", "ok"), 1, 1),
])
def test_only_one_retry_and_none_after_a_byte_left(phases, plan, connections, copies):
    async def go(client, base):
        with pytest.raises(UpstreamError) as info:
            await client.send(_nonce_req(base, "nonce-b1"))
        return info.value

    error = _phase_run(phases, go, *plan)
    assert error.err_type == "net" and phases.pending == ["ok"]
    assert phases.connections == connections and phases.copies("nonce-b1") == copies


def test_an_untrusted_certificate_is_not_tried_again(phases):
    async def go(client, base):
        with pytest.raises(UpstreamError) as info:
            await client.send(_nonce_req(base, "nonce-c1"))
        return info.value

    error = _phase_run(phases, go, trusted=False)
    assert "CERTIFICATE" in error.message.upper() and phases.connections == 1
