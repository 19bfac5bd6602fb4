"""HttpxUpstream against a local HTTP/2-capable TLS mock: protocol, raw bytes, timeouts, pooling."""
import asyncio
import contextlib
import gzip
import socket

import pytest

from harness.phase_mock import PhaseMock
from harness.tls_mock import TlsMock
from proxy.config.load import load_settings
from proxy.core.errors import UpstreamError, UpstreamTimeout
from proxy.upstream.base import StreamIdle, UpstreamRequest
from proxy.upstream.pooled import HttpxUpstream

pytestmark = pytest.mark.quick

EVENTS = [b"event: message_start\ndata: {\"n\":%d}\n\n" % i for i in range(20)]
GZIPPED = gzip.compress(b'{"type":"message","content":[]}')
disconnects: list[str] = []  # paths whose client went away before the answer ended


async def _until_disconnect(receive, path: str, limit: float = 2.0) -> None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(limit):
            while (await receive())["type"] != "http.disconnect":
                pass
            disconnects.append(path)


async def _app(scope, receive, send):
    path = scope["path"]
    if path == "/slow":  # no headers until the client gives up
        await _until_disconnect(receive, path)
        return
    # read the whole request first (hypercorn's h2 breaks on DATA for a stream it already answered)
    while (await receive()).get("more_body"):
        pass
    if path == "/json":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": b'{"ok":true}'})
        return
    if path == "/gzip":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-encoding", b"gzip")]})
        await send({"type": "http.response.body", "body": GZIPPED})
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/event-stream"), (b"x-order", b"1"),
                            (b"x-order", b"2")]})
    if path == "/stall":  # one event, then silence until the client resets the stream
        await send({"type": "http.response.body", "body": EVENTS[0], "more_body": True})
        await _until_disconnect(receive, path)
        return
    for event in EVENTS:
        await send({"type": "http.response.body", "body": event, "more_body": True})
        await asyncio.sleep(0)
    await send({"type": "http.response.body", "body": b""})


@pytest.fixture(scope="module")
def mock():
    with TlsMock(_app) as server:
        yield server


@pytest.fixture
def run(mock):
    """run(env, fn): fn(client, base_url) against the mock, with a fresh client trusting its CA."""
    mock.calls.clear()
    disconnects.clear()

    def _run(env, fn):
        async def main():
            client = HttpxUpstream(load_settings({"CCP_CA_BUNDLE": mock.ca_path, **env}))
            await client.start()
            try:
                return await fn(client, mock.base_url)
            finally:
                await client.close()
        return asyncio.run(main())
    return _run


def _req(base, path, stream=False):
    return UpstreamRequest("POST", base + path, {"content-type": "application/json"}, b"{}", stream)


async def _wait_for(predicate, what, limit=2.0):
    """Wait on a condition with a deadline (the server side runs in another thread)."""
    async with asyncio.timeout(limit):
        while not predicate():
            await asyncio.sleep(0.01)


def test_http2_by_default_and_sse_unchanged_in_order(run, mock):
    async def go(client, base):
        resp = await client.send(_req(base, "/sse", stream=True))
        chunks = [c async for c in resp.chunks()]
        resp.release()
        return resp, chunks

    resp, chunks = run({}, go)
    assert resp.h2 is True and resp.status == 200 and resp.is_sse
    assert b"".join(chunks) == b"".join(EVENTS)
    assert [v for k, v in resp.headers if k == "x-order"] == ["1", "2"]  # received order kept
    assert [c.http_version for c in mock.calls] == ["2"]


@pytest.mark.parametrize("key", ["CCP_FORCE_H1", "MITM_FORCE_H1"])
def test_force_h1(run, mock, key):
    async def go(client, base):
        resp = await client.send(_req(base, "/json"))
        body = await resp.read()
        resp.release()
        return resp, body

    resp, body = run({key: "1"}, go)
    assert resp.h2 is False and body == b'{"ok":true}'
    assert [c.http_version for c in mock.calls] == ["1.1"]


@pytest.mark.parametrize("force_h1", ["0", "1"])
def test_gzip_passes_through_undecoded(run, force_h1):
    async def go(client, base):
        resp = await client.send(_req(base, "/gzip"))
        body = await resp.read()
        resp.release()
        return resp, body

    resp, body = run({"CCP_FORCE_H1": force_h1}, go)
    assert body == GZIPPED
    assert ("content-encoding", "gzip") in resp.headers


@pytest.mark.parametrize("force_h1", ["0", "1"])
def test_connections_are_reused(run, mock, force_h1):
    async def go(client, base):
        for _ in range(5):
            resp = await client.send(_req(base, "/json"))
            assert await resp.read() == b'{"ok":true}'
            resp.release()

    run({"CCP_FORCE_H1": force_h1}, go)
    assert len(mock.calls) == 5 and mock.connections() == 1


def test_refused_names_the_host(run):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]

    async def go(client, base):
        with pytest.raises(UpstreamError) as info:
            await client.send(_req(f"https://127.0.0.1:{closed}", "/x"))
        return info.value

    error = run({}, go)
    assert not isinstance(error, UpstreamTimeout)
    assert f"127.0.0.1:{closed}" in error.message and error.err_type == "net"


def test_untrusted_certificate_is_refused(mock):
    async def go():
        client = HttpxUpstream(load_settings({}))  # no CA bundle: the mock's CA is unknown
        await client.start()
        try:
            with pytest.raises(UpstreamError) as info:
                await client.send(_req(mock.base_url, "/json"))
        finally:
            await client.close()
        return info.value

    error = asyncio.run(go())
    assert not isinstance(error, UpstreamTimeout) and "CERTIFICATE" in error.message.upper()


def test_header_timeout(run):
    async def go(client, base):
        with pytest.raises(UpstreamTimeout) as info:
            await client.send(_req(base, "/slow", stream=True))
        return info.value

    error = run({"CCP_HEADER_TIMEOUT": "200ms"}, go)
    assert type(error) is UpstreamTimeout and "127.0.0.1" in error.message


def test_tls_handshake_timeout():
    with socket.socket() as silent:  # accepts TCP (backlog) but never speaks TLS
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]

        async def go():
            client = HttpxUpstream(load_settings({"CCP_TLS_TIMEOUT": "200ms"}))
            await client.start()
            try:
                with pytest.raises(UpstreamTimeout) as info:
                    await client.send(_req(f"https://127.0.0.1:{port}", "/x"))
            finally:
                await client.close()
            return info.value

        error = asyncio.run(go())
    assert "TLS handshake" in error.message and f"127.0.0.1:{port}" in error.message


def test_idle_stream_resets_only_its_own_stream(run, mock):
    async def go(client, base):
        resp = await client.send(_req(base, "/stall", stream=True))
        seen = []
        with pytest.raises(StreamIdle):
            async for chunk in resp.chunks():
                seen.append(chunk)
        resp.close()
        after = await client.send(_req(base, "/json"))  # the connection survived the idle stream
        body = await after.read()
        after.release()
        return resp, seen, body

    resp, seen, body = run({"CCP_SSE_IDLE_TIMEOUT": "200ms"}, go)
    assert resp.h2 and seen == [EVENTS[0]] and body == b'{"ok":true}'
    assert mock.connections() == 1


def test_closing_an_unfinished_http1_stream_closes_its_connection(run):
    """(over HTTP/2 httpcore forgets an abandoned stream without an RST_STREAM, and it offers no
    public way to send one: proxy.upstream.h2client is the HTTP/2 client that does)"""
    async def go(client, base):
        resp = await client.send(_req(base, "/stall", stream=True))
        first = await anext(resp.chunks())
        resp.close()  # a client that went away mid-stream
        await _wait_for(lambda: "/stall" in disconnects, "the server to see the close")
        return first

    assert run({"CCP_FORCE_H1": "1"}, go) == EVENTS[0]


@pytest.fixture(scope="module")
def phases():
    with PhaseMock(tls=True) as mock:
        yield mock


def _phase_run(phases, env, fn, *plan):
    """fn(client, base_url) against the phase mock, its counts reset and `plan` queued."""
    phases.wait_for(lambda: phases.open_connections() == 0, what="the last test's connections")
    phases.reset()
    phases.plan(*plan)

    async def main():
        client = HttpxUpstream(load_settings({"CCP_CA_BUNDLE": phases.ca_path, **env}))
        await client.start()
        try:
            return await fn(client, phases.base_url)
        finally:
            await client.close()
    return asyncio.run(main())


def _nonce_req(base, nonce, stream=False):
    return UpstreamRequest("POST", base + "/v1/messages", {"content-type": "application/json"},
                           b'{"model":"m","stream":%s,"n":"%s"}' % (b"true" if stream else b"false",
                                                                   nonce.encode()), stream)


@pytest.mark.parametrize("force_h1", ["0", "1"])
@pytest.mark.parametrize("phase", ["refuse", "tls_close"])
def test_a_connection_broken_before_anything_was_written_is_tried_once_more(phases, phase,
                                                                           force_h1):
    async def go(client, base):
        resp = await client.send(_nonce_req(base, "nonce-a1"))
        body = await resp.read()
        resp.release()
        return resp.status, body

    status, body = _phase_run(phases, {"CCP_FORCE_H1": force_h1}, go, phase, "ok")
    assert status == 200 and b'"type": "message"' in body
    assert phases.copies("nonce-a1") == 1 and phases.pending == []
    assert phases.connections == 2 and phases.handshakes == 1


def test_two_broken_handshakes_are_the_answer(phases):
    async def go(client, base):
        with pytest.raises(UpstreamError) as info:
            await client.send(_nonce_req(base, "nonce-b1"))
        return info.value

    error = _phase_run(phases, {}, go, "tls_close", "tls_close", "ok")
    assert error.err_type == "net" and phases.pending == ["ok"] and phases.connections == 2


def test_an_untrusted_certificate_is_not_tried_again(phases):
    phases.wait_for(lambda: phases.open_connections() == 0, what="the last test's connections")
    phases.reset()

    async def go():
        client = HttpxUpstream(load_settings({}))  # the phase mock's CA is unknown
        await client.start()
        try:
            with pytest.raises(UpstreamError) as info:
                await client.send(_nonce_req(phases.base_url, "nonce-c1"))
        finally:
            await client.close()
        return info.value

    error = asyncio.run(go())
    assert "CERTIFICATE" in error.message.upper() and phases.connections == 1


@pytest.mark.parametrize("force_h1", ["0", "1"])
@pytest.mark.parametrize("phase", ["mid_write", "after_write"])
def test_a_failure_after_the_request_may_have_left_is_not_retried(phases, phase, force_h1):
    """Bytes of the request went out: it may have reached the upstream, so it is the client's 502,
    never sent a second time."""

    async def go(client, base):
        with pytest.raises(UpstreamError) as info:
            await client.send(_nonce_req(base, "nonce-d1"))
        return info.value

    error = _phase_run(phases, {"CCP_FORCE_H1": force_h1}, go, phase, "ok")
    assert error.err_type == "net" and phases.pending == ["ok"] and phases.connections == 1
    assert phases.copies("nonce-d1") == (1 if phase == "after_write" else 0)


@pytest.mark.parametrize("force_h1", ["0", "1"])
def test_a_kept_connection_the_upstream_closed_while_idle_is_replaced_before_writing(phases,
                                                                                    force_h1):
    """httpcore looks for that on an idle HTTP/1.1 connection itself, not on an HTTP/2 one: the
    first write of an attempt asks the kernel whether the upstream has gone."""

    async def go(client, base):
        first = await client.send(_nonce_req(base, "nonce-e1"))
        await first.read()
        first.release()
        phases.wait_for(lambda: phases.idle_connections() == 1, what="the kept connection idle")
        assert phases.close_idle() == 1  # the upstream's keep-alive ran out
        second = await client.send(_nonce_req(base, "nonce-e2"))
        body = await second.read()
        second.release()
        return first.h2, second.status, body

    h2, status, body = _phase_run(phases, {"CCP_FORCE_H1": force_h1}, go, "keep")
    assert h2 is (force_h1 == "0") and status == 200 and b"message" in body
    assert phases.copies("nonce-e1") == phases.copies("nonce-e2") == 1
    assert phases.connections == 2 and len(phases.requests) == 2


def test_a_connect_failure_is_tried_once_only(run, monkeypatch):
    import httpcore

    async def go(client, base):
        calls = []

        async def refused(request, **kw):
            calls.append(request)
            raise httpcore.ConnectError("[Errno 111] Connection refused")

        monkeypatch.setattr(client._client, "send", refused)
        with pytest.raises(UpstreamError) as info:
            await client.send(_req(base, "/json"))
        return len(calls), info.value

    n, error = run({}, go)
    assert n == 2 and error.err_type == "net" and "refused" in error.message


def test_no_retry_of_its_own(run, mock, monkeypatch):
    import httpcore

    async def go(client, base):
        calls = []

        async def always_broken(request, **kw):
            calls.append(request)
            raise httpcore.RemoteProtocolError("Server disconnected")

        monkeypatch.setattr(client._client, "send", always_broken)
        with pytest.raises(UpstreamError) as info:
            await client.send(_req(base, "/json"))
        return len(calls), info.value

    n, error = run({}, go)
    assert n == 1 and error.err_type == "net" and "Server disconnected" in error.message


def test_an_answer_past_max_response_bytes_is_cut_and_the_idle_pool_is_bounded(run):
    from proxy.core.errors import UpstreamTooLarge

    async def go(client, base):
        resp = await client.send(_req(base, "/json"))
        with pytest.raises(UpstreamTooLarge, match="CCP_MAX_RESPONSE_BYTES"):
            await resp.read()  # 11 bytes, more than 8
        resp.close()
        pool = client._client._transport._pool
        return pool._max_keepalive_connections

    assert run({"CCP_MAX_RESPONSE_BYTES": "8", "CCP_UPSTREAM_POOL_SIZE": "3"}, go) == 3
