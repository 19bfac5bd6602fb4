"""The real upstream client against a local aiohttp server: pooling aside, how errors leave the seam."""
import asyncio
import socket

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from proxy.config.load import load_settings
from proxy.config.settings import Settings
from proxy.core.errors import UpstreamError, UpstreamTimeout
from proxy.upstream.aiohttp_client import AiohttpUpstream
from proxy.upstream.base import StreamIdle, UpstreamRequest
from proxy.upstream.factory import SchemeUpstream, make_upstream
from proxy.upstream.h1 import H1Upstream
from proxy.upstream.pooled import HttpxUpstream

pytestmark = pytest.mark.quick


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


@pytest.fixture(params=["aiohttp", "h1"])
def client_kind(request):
    return request.param


def _run(env, fn, kind="aiohttp"):
    async def main():
        app = web.Application()
        app.router.add_post("/sse", _sse)
        app.router.add_post("/echo", _echo_headers)
        app.router.add_post("/slow", _slow_headers)
        async with TestServer(app) as server:
            client = make_upstream(load_settings({**env, "CCP_UPSTREAM_CLIENT": kind}))
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

    import json
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


def test_make_upstream_picks_the_client():
    assert isinstance(make_upstream(Settings(upstream_client="httpx")), HttpxUpstream)
    auto = make_upstream(Settings())  # the default: https via the HTTP/2 client, cleartext via aiohttp
    assert isinstance(auto, SchemeUpstream)
    assert isinstance(auto._tls, HttpxUpstream) and isinstance(auto._plain, H1Upstream)
    assert isinstance(make_upstream(Settings(upstream_client="aiohttp")), AiohttpUpstream)


def test_auto_makes_the_tls_client_only_when_an_https_url_needs_it():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    env = {"CCP_ANTHROPIC_BASE_URL": f"http://127.0.0.1:{closed}",
           "CCP_ZAI_BASE_URL": f"http://127.0.0.1:{closed}/api/anthropic"}

    async def main():
        auto = make_upstream(load_settings(env))
        assert isinstance(auto, SchemeUpstream) and auto._tls is None  # every provider is cleartext
        await auto.start()
        try:
            with pytest.raises(UpstreamError):
                await auto.send(UpstreamRequest("POST", f"https://127.0.0.1:{closed}/v1/messages",
                                                {}, b"{}", False))
            assert isinstance(auto._tls, HttpxUpstream)  # made when an https URL came after all
        finally:
            await auto.close()

    asyncio.run(main())
