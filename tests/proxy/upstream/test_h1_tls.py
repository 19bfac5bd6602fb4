"""The shim's own HTTP/1.1 client over TLS (proxy.upstream.h1): against a TLS mock that offers h2 and
http/1.1 by ALPN, through a TCP forwarder the tests control (to break a handshake or close a pooled
connection at a chosen moment). What is asserted is what the server saw: connections, protocol,
requests."""
import asyncio
import contextlib
import json

import pytest

from harness.tls_mock import TlsMock, anthropic_app
from proxy.config.load import load_settings
from proxy.core.errors import UpstreamError, UpstreamTimeout
from proxy.upstream.base import UpstreamRequest
from proxy.upstream.h1 import H1Upstream

pytestmark = pytest.mark.quick


@pytest.fixture(scope="module")
def mock():
    with TlsMock(anthropic_app) as server:
        yield server


class Forwarder:
    """127.0.0.1:port → the mock. `drop_next` connections are closed as soon as they are accepted
    (before any TLS byte); `close_all()` closes every piped connection, as an upstream whose
    keep-alive timeout ran out would."""

    def __init__(self, target_port: int, drop_next: int = 0) -> None:
        self.target_port = target_port
        self.drop_next = drop_next
        self.accepted = 0
        self._pipes: list[asyncio.StreamWriter] = []
        self._tasks: set[asyncio.Task] = set()
        self._server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> "Forwarder":
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc) -> None:
        self.close_all()
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    async def _accept(self, reader, writer) -> None:
        self.accepted += 1
        if self.drop_next > 0:
            self.drop_next -= 1
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._pipes += [writer, up_writer]
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.get_running_loop().create_task(self._pipe(src, dst))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        dst.close()

    def close_all(self) -> None:
        for writer in self._pipes:
            writer.close()
        self._pipes.clear()


def _client(mock, **env) -> H1Upstream:
    return H1Upstream(load_settings({"CCP_CA_BUNDLE": mock.ca_path,
                                     **{f"CCP_{k.upper()}": v for k, v in env.items()}}))


def _post(base: str, stream: bool = False) -> UpstreamRequest:
    body = json.dumps({"model": "claude-sonnet-4-5", "stream": stream, "max_tokens": 5,
                       "messages": [{"role": "user", "content": "hi"}]}).encode()
    return UpstreamRequest("POST", base + "/v1/messages",
                           {"content-type": "application/json", "x-api-key": "k"}, body, stream)


def _run(go, mock, **env):
    async def main():
        client = _client(mock, **env)
        await client.start()
        try:
            return await go(client)
        finally:
            await client.close()
    return asyncio.run(main())


def _posts(mock, since: int):
    return [c for c in mock.calls[since:] if c.method == "POST"]


def test_json_and_sse_over_tls_speak_http1_on_one_kept_connection(mock):
    before = len(mock.calls)

    async def go(client):
        out = []
        for stream in (False, True, True, False):
            resp = await client.send(_post(mock.base_url, stream))
            body = b"".join([chunk async for chunk in resp.chunks()])
            resp.release()
            out.append((resp.status, resp.h2, resp.is_sse, body))
        return out, client.handshakes

    out, handshakes = _run(go, mock)
    assert [(s, h2, sse) for s, h2, sse, _ in out] == [(200, False, False), (200, False, True),
                                                       (200, False, True), (200, False, False)]
    assert json.loads(out[0][3])["type"] == "message"
    assert b"over h2 we go" in out[1][3].replace(b'"', b"").replace(b"text_delta", b"") or \
        b"message_stop" in out[1][3]
    calls = _posts(mock, before)
    assert {c.http_version for c in calls} == {"1.1"}  # h2 is never offered by this client
    assert len({c.client for c in calls}) == 1 and handshakes == 1


def test_an_untrusted_certificate_is_refused_naming_the_fix(mock):
    async def go(client):
        with pytest.raises(UpstreamError) as info:
            await client.send(_post(mock.base_url))
        return info.value

    error = asyncio.run(_without_ca(go))
    assert "TLS certificate not trusted" in error.message and "CCP_CA_BUNDLE" in error.message


async def _without_ca(go):
    client = H1Upstream(load_settings({}))
    await client.start()
    try:
        return await go(client)
    finally:
        await client.close()


def test_a_handshake_that_never_starts_is_a_timeout_naming_ccp_tls_timeout(mock):
    async def main():
        held = []
        silent = await asyncio.start_server(lambda r, w: held.append(w), "127.0.0.1", 0)  # no TLS
        port = silent.sockets[0].getsockname()[1]
        client = _client(mock, tls_timeout="200ms")
        await client.start()
        try:
            with pytest.raises(UpstreamTimeout) as info:
                await client.send(_post(f"https://127.0.0.1:{port}"))
            return info.value
        finally:
            await client.close()
            for writer in held:
                writer.close()
            silent.close()
            await silent.wait_closed()

    error = asyncio.run(main())
    assert "CCP_TLS_TIMEOUT" in error.message and "TLS handshake" in error.message


def test_a_connection_closed_in_its_handshake_is_tried_once_more_and_nothing_is_sent_twice(mock):
    before = len(mock.calls)

    async def main():
        async with Forwarder(mock.port, drop_next=1) as fwd:
            client = _client(mock)
            await client.start()
            try:
                resp = await client.send(_post(fwd.url))
                body = await resp.read()
                resp.release()
            finally:
                await client.close()
            return fwd.accepted, resp.status, body

    accepted, status, body = asyncio.run(main())
    assert status == 200 and json.loads(body)["type"] == "message"
    assert accepted == 2 and len(_posts(mock, before)) == 1


def test_two_broken_handshakes_are_the_answer(mock):
    before = len(mock.calls)

    async def main():
        async with Forwarder(mock.port, drop_next=5) as fwd:
            client = _client(mock)
            await client.start()
            try:
                with pytest.raises(UpstreamError) as info:
                    await client.send(_post(fwd.url))
            finally:
                await client.close()
            return fwd.accepted, info.value

    accepted, error = asyncio.run(main())
    assert accepted == 2 and "TLS handshake" in error.message
    assert _posts(mock, before) == []


def test_a_pooled_connection_the_upstream_closed_is_replaced_without_failing_a_request(mock):
    before = len(mock.calls)

    async def main():
        async with Forwarder(mock.port) as fwd:
            client = _client(mock)
            await client.start()
            try:
                first = await client.send(_post(fwd.url))
                await first.read()
                first.release()
                assert client.idle() == 1
                fwd.close_all()  # the upstream's keep-alive ran out while the connection sat idle
                async with asyncio.timeout(5):
                    while client.idle():  # until the close has reached the client
                        await asyncio.sleep(0.01)
                second = await client.send(_post(fwd.url))
                body = await second.read()
                second.release()
            finally:
                await client.close()
            return fwd.accepted, second.status, body, client.handshakes

    accepted, status, body, handshakes = asyncio.run(main())
    assert status == 200 and json.loads(body)["type"] == "message"
    assert accepted == 2 and handshakes == 2 and len(_posts(mock, before)) == 2


def test_handshakes_under_steady_load_stay_bounded_by_the_pool(mock):
    """Three rounds of 8 concurrent requests: with room for 8 idle connections the later rounds
    reuse them (8 handshakes in all); with room for 3 each round makes 5 new ones."""
    async def rounds(client):
        for _ in range(3):
            answers = await asyncio.gather(*(client.send(_post(mock.base_url)) for _ in range(8)))
            for resp in answers:
                await resp.read()
                resp.release()
        return client.handshakes, client.idle()

    assert _run(rounds, mock, upstream_pool_size="8") == (8, 8)
    assert _run(rounds, mock, upstream_pool_size="3") == (8 + 5 + 5, 3)


def test_idle_connections_expire_after_ccp_upstream_keepalive(mock):
    async def go(client):
        resp = await client.send(_post(mock.base_url))
        await resp.read()
        resp.release()
        [conn] = [c for pool in client._pools.values() for c in pool]
        conn.last_used -= 0.5  # as if it had sat idle for half a second: past the 200 ms keep-alive
        again = await client.send(_post(mock.base_url))
        await again.read()
        again.release()
        return client.handshakes, conn.closed

    assert _run(go, mock, upstream_keepalive="200ms") == (2, True)


def test_a_head_answer_ends_at_its_headers(mock):
    async def go(client):
        resp = await client.send(UpstreamRequest("HEAD", mock.base_url + "/", {}, b"", False))
        body = await resp.read()
        resp.close()
        return resp.status, body

    assert _run(go, mock) == (200, b"")


def test_under_uvloop_a_connection_closed_before_its_handshake_is_tried_once_more():
    """uvloop's start_tls on a connection the upstream closed as it accepted may hand back a closed
    transport with no handshake done; that is nothing written, tried once more, never a hang."""
    uvloop = pytest.importorskip("uvloop")
    from harness.phase_mock import PhaseMock

    with PhaseMock(tls=True) as phases:
        async def main():
            client = _client(phases, json_timeout="5s")
            await client.start()
            seen = []
            try:
                for _ in range(20):  # the close races the client's start_tls: many tries
                    phases.plan("refuse", "ok")
                    resp = await client.send(_post(phases.base_url))
                    await resp.read()
                    resp.close()
                    seen.append((resp.status, phases.pending))
            finally:
                await client.close()
            return seen

        seen = uvloop.run(main())
        assert seen == [(200, [])] * 20
        assert phases.connections == 40 and phases.handshakes == 20
        assert len([r for r in phases.requests if r.complete]) == 20
