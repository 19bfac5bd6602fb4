"""The shim's own HTTP/1.1 client against a scripted server that writes exact bytes: framing, the
pool, flow control, timeouts and every way an answer can break."""
import asyncio

import pytest

from proxy.config.load import load_settings
from proxy.core.errors import UpstreamError, UpstreamTimeout
from proxy.upstream.base import StreamIdle, UpstreamRequest
from proxy.config.settings import DEFAULT_UPSTREAM_KEEPALIVE as KEEPALIVE_S
from proxy.upstream.h1 import HIGH_WATER, H1Upstream

pytestmark = pytest.mark.quick


async def _read_request(reader: asyncio.StreamReader) -> tuple[bytes, dict[bytes, bytes], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    line, *lines = head[:-4].split(b"\r\n")
    headers = {}
    for raw in lines:
        name, _, value = raw.partition(b":")
        headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get(b"content-length", b"0")))
    return line, headers, body


class Scripted:
    """A server whose every connection runs `script(reader, writer, seen)`; it counts connections
    and keeps every request it read."""

    def __init__(self, script) -> None:
        self.script = script
        self.connections = 0
        self.seen: list[tuple[bytes, dict, bytes]] = []
        self.server = None

    async def _conn(self, reader, writer) -> None:
        self.connections += 1
        try:
            await self.script(reader, writer, self)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def request(self, reader):
        req = await _read_request(reader)
        self.seen.append(req)
        return req

    async def __aenter__(self):
        self.server = await asyncio.start_server(self._conn, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc):
        self.server.close()


def _client(**env) -> H1Upstream:
    return H1Upstream(load_settings({f"CCP_{k.upper()}": v for k, v in env.items()}))


def _run(script, go, **env):
    async def main():
        async with Scripted(script) as server:
            client = _client(**env)
            await client.start()
            try:
                return await go(client, server)
            finally:
                await client.close()
    return asyncio.run(main())


def _post(url, body=b"{}", stream=False, headers=None):
    return UpstreamRequest("POST", url + "/v1/messages", headers or {"x-api-key": "k"}, body, stream)


def _json_answer(body: bytes, extra: bytes = b"") -> bytes:
    return (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n%s\r\n%s"
            % (len(body), extra, body))


async def _keep_alive_json(reader, writer, server):
    while True:
        _, _, body = await server.request(reader)
        writer.write(_json_answer(b'{"echo":' + body + b"}"))
        await writer.drain()


def test_request_on_the_wire_and_keep_alive_reuse():
    async def go(client, server):
        answers = []
        for n in range(3):
            resp = await client.send(_post(server.url, b'{"n":%d}' % n))
            answers.append((resp.status, resp.is_sse, await resp.read()))
            resp.release()
        return answers, server.connections, server.seen

    answers, connections, seen = _run(_keep_alive_json, go)
    assert answers == [(200, False, b'{"echo":{"n":%d}}' % n) for n in range(3)]
    assert connections == 1  # the one connection went back to the pool each time
    line, headers, body = seen[0]
    assert line == b"POST /v1/messages HTTP/1.1"
    assert sorted(headers) == [b"content-length", b"host", b"x-api-key"]
    assert headers[b"content-length"] == b"7" and body == b'{"n":0}'


def test_an_answer_not_read_to_its_end_closes_its_connection():
    async def go(client, server):
        resp = await client.send(_post(server.url, stream=True))
        resp.release()  # never read: the connection cannot be reused
        resp = await client.send(_post(server.url))
        await resp.read()
        resp.release()
        return server.connections

    async def two(reader, writer, server):
        n = server.connections
        await server.request(reader)
        if n == 1:
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                         b"transfer-encoding: chunked\r\n\r\n5\r\nhello\r\n")
            await writer.drain()
            await reader.read()  # until the client closes
        else:
            writer.write(_json_answer(b"{}"))
            await writer.drain()

    assert _run(two, go) == 2


def test_connection_close_and_http10_are_not_pooled():
    async def go(client, server):
        for _ in range(2):
            resp = await client.send(_post(server.url))
            assert await resp.read() == b"{}"
            resp.release()
        return server.connections

    async def close_after(reader, writer, server):
        await server.request(reader)
        writer.write(_json_answer(b"{}", b"connection: close\r\n"))
        await writer.drain()

    assert _run(close_after, go) == 2


def test_chunked_stream_arrives_chunk_by_chunk_and_sse_is_seen():
    events = [b"event: ping\ndata: {}\n\n", b"event: message_stop\ndata: {}\n\n"]

    async def script(reader, writer, server):
        await server.request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
                     b"content-encoding: gzip\r\ntransfer-encoding: chunked\r\n\r\n")
        for event in events:
            writer.write(b"%x\r\n%s\r\n" % (len(event), event))
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        await reader.read()

    async def go(client, server):
        resp = await client.send(_post(server.url, stream=True))
        chunks = [c async for c in resp.chunks()]
        resp.release()
        return resp, chunks

    resp, chunks = _run(script, go)
    assert resp.is_sse and resp.status == 200 and resp.h2 is False
    assert b"".join(chunks) == b"".join(events)
    assert ("content-encoding", "gzip") in resp.headers  # relayed as sent, never decoded


def test_a_body_framed_by_the_close_ends_at_the_close():
    async def script(reader, writer, server):
        await server.request(reader)
        writer.write(b"HTTP/1.0 200 OK\r\ncontent-type: application/json\r\n\r\n{\"a\":")
        await writer.drain()
        writer.write(b"1}")
        await writer.drain()

    async def go(client, server):
        resp = await client.send(_post(server.url))
        body = await resp.read()
        resp.release()
        return body

    assert _run(script, go) == b'{"a":1}'


def test_interim_100_continue_is_skipped():
    async def script(reader, writer, server):
        await server.request(reader)
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n" + _json_answer(b'{"ok":1}'))
        await writer.drain()
        await reader.read()

    async def go(client, server):
        resp = await client.send(_post(server.url))
        body = await resp.read()
        resp.release()
        return resp.status, body

    assert _run(script, go) == (200, b'{"ok":1}')


@pytest.mark.parametrize("cut, kind, words", [
    (b"", UpstreamError, "cannot reach 127.0.0.1"),  # closed before any answer
    (b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n{\"a\"", UpstreamError, "upstream body broke"),
    (b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n", UpstreamError, "malformed HTTP"),
    (b"NOT HTTP AT ALL\r\n\r\n", UpstreamError, "malformed HTTP"),
])
def test_broken_answers_leave_as_the_seams_errors(cut, kind, words):
    async def script(reader, writer, server):
        await server.request(reader)
        writer.write(cut)
        await writer.drain()

    async def go(client, server):
        with pytest.raises(kind) as info:
            resp = await client.send(_post(server.url))
            try:
                await resp.read()
            finally:
                resp.close()
        return info.value.message

    assert words in _run(script, go)


def test_a_stream_cut_mid_way_raises_upstream_error():
    async def script(reader, writer, server):
        await server.request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                     b"transfer-encoding: chunked\r\n\r\n5\r\nhello\r\n")
        await writer.drain()

    async def go(client, server):
        resp = await client.send(_post(server.url, stream=True))
        got = []
        with pytest.raises(UpstreamError) as info:
            async for chunk in resp.chunks():
                got.append(chunk)
        resp.close()
        return got, info.value

    got, error = _run(script, go)
    assert got == [b"hello"] and "upstream stream broke" in error.message
    assert not isinstance(error, UpstreamTimeout)


def test_timeouts_headers_json_total_and_stream_idle():
    async def slow_headers(reader, writer, server):
        await server.request(reader)
        await reader.read()

    async def slow_body(reader, writer, server):
        await server.request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n{")
        await writer.drain()
        await reader.read()

    async def stall_stream(reader, writer, server):
        await server.request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                     b"transfer-encoding: chunked\r\n\r\n5\r\nhello\r\n")
        await writer.drain()
        await reader.read()

    async def headers(client, server):
        with pytest.raises(UpstreamTimeout) as info:
            await client.send(_post(server.url))
        return info.value.message

    async def body(client, server):
        resp = await client.send(_post(server.url))
        with pytest.raises(UpstreamTimeout) as info:
            await resp.read()
        resp.close()
        return info.value.message

    async def idle(client, server):
        resp = await client.send(_post(server.url, stream=True))
        got = []
        with pytest.raises(StreamIdle):
            async for chunk in resp.chunks():
                got.append(chunk)
        resp.close()
        return got

    assert "no response headers from 127.0.0.1" in _run(slow_headers, headers, header_timeout="150ms")
    assert "no response headers" in _run(slow_headers, headers, json_timeout="150ms")
    assert "did not answer in time" in _run(slow_body, body, json_timeout="150ms")
    assert _run(stall_stream, idle, sse_idle_timeout="150ms") == [b"hello"]


def test_unreachable_and_non_http_urls():
    async def main():
        client = _client(dial_timeout="2s")
        await client.start()
        probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = probe.sockets[0].getsockname()[1]
        probe.close()
        await probe.wait_closed()
        try:
            with pytest.raises(UpstreamError) as refused:
                await client.send(_post(f"http://127.0.0.1:{port}"))
            with pytest.raises(UpstreamError) as tls:
                await client.send(_post(f"https://127.0.0.1:{port}"))
            with pytest.raises(UpstreamError) as other:
                await client.send(_post(f"ftp://127.0.0.1:{port}"))
        finally:
            await client.close()
        return refused.value, tls.value, other.value

    refused, tls, other = asyncio.run(main())
    assert not isinstance(refused, UpstreamTimeout) and "cannot reach 127.0.0.1:" in refused.message
    assert "cannot reach 127.0.0.1:" in tls.message  # https is spoken, the port is closed
    assert "not an http or https URL" in other.message


def test_a_header_with_a_line_break_is_refused_not_sent():
    async def go(client, server):
        with pytest.raises(UpstreamError) as info:
            await client.send(_post(server.url, headers={"x-api-key": "k\r\nx-evil: 1"}))
        return info.value.message, server.seen

    message, seen = _run(_keep_alive_json, go)
    assert "line break" in message and seen == []


def test_a_slow_reader_pauses_the_upstream_and_is_not_taken_for_idle():
    """More than HIGH_WATER bytes arrive while the handler reads nothing: reading pauses (the
    server's writes back up), and the idle timer, shorter than the pause, does not fire."""
    total = 128 * HIGH_WATER  # far beyond what the sockets on both sides can buffer
    chunk = b"x" * 65536

    async def script(reader, writer, server):
        await server.request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                     b"content-length: %d\r\n\r\n" % total)
        for _ in range(total // len(chunk)):
            writer.write(chunk)
            await writer.drain()
        server.done_writing = True
        await reader.read()

    async def go(client, server):
        server.done_writing = False
        resp = await client.send(_post(server.url, stream=True))
        first = await resp.chunks().__anext__()
        for _ in range(100):  # give the server every chance to write it all: it cannot
            await asyncio.sleep(0.005)
        paused = resp._paused and not server.done_writing
        await asyncio.sleep(0.3)  # longer than the idle timeout, while paused
        rest = [c async for c in resp.chunks()]
        resp.release()
        return paused, len(first) + sum(map(len, rest)), server.done_writing

    paused, got, done = _run(script, go, sse_idle_timeout="200ms")
    assert (paused, got, done) == (True, total, True)


def test_the_client_going_away_while_waiting_closes_the_connection():
    async def script(reader, writer, server):
        await server.request(reader)
        server.eof = await reader.read() == b""  # the client closed its side

    async def go(client, server):
        server.eof = None
        task = asyncio.ensure_future(client.send(_post(server.url)))
        for _ in range(400):
            if server.seen:
                break
            await asyncio.sleep(0.005)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        for _ in range(200):
            if server.eof is not None:
                break
            await asyncio.sleep(0.005)
        return server.eof, sum(len(p) for p in client._pools.values())

    assert _run(script, go) == (True, 0)


def test_idle_pooled_connections_expire():
    async def go(client, server):
        resp = await client.send(_post(server.url))
        await resp.read()
        resp.release()
        conn = client._pools[next(iter(client._pools))][0]
        conn.last_used -= KEEPALIVE_S + 1  # as if it sat idle past the keep-alive time
        resp = await client.send(_post(server.url))
        await resp.read()
        resp.release()
        return server.connections, conn.closed

    assert _run(_keep_alive_json, go) == (2, True)


def test_a_connection_the_upstream_closed_while_pooled_is_not_used():
    async def once(reader, writer, server):
        await server.request(reader)
        writer.write(_json_answer(b"{}"))
        await writer.drain()
        # then the server closes this connection

    async def go(client, server):
        resp = await client.send(_post(server.url))
        await resp.read()
        resp.release()
        conn = client._pools[next(iter(client._pools))][0]
        for _ in range(400):  # until the client has seen the close
            if conn.closed:
                break
            await asyncio.sleep(0.005)
        resp = await client.send(_post(server.url))
        body = await resp.read()
        resp.release()
        return server.connections, body

    assert _run(once, go) == (2, b"{}")


def test_bytes_after_a_complete_answer_spoil_the_connection_not_the_answer():
    async def script(reader, writer, server):
        await server.request(reader)
        writer.write(_json_answer(b'{"first":1}') + _json_answer(b'{"extra":2}'))
        await writer.drain()
        await reader.read()

    async def go(client, server):
        resp = await client.send(_post(server.url))
        body = await resp.read()
        status = resp.status
        resp.release()
        resp = await client.send(_post(server.url))  # not on the spoiled connection
        second = await resp.read()
        resp.release()
        return status, body, second, server.connections

    assert _run(script, go) == (200, b'{"first":1}', b'{"first":1}', 2)


def test_a_released_answer_is_freed_without_the_cycle_collector():
    import gc
    import weakref

    async def go(client, server):
        resp = await client.send(_post(server.url))
        await resp.read()
        resp.release()
        ref = weakref.ref(resp)
        del resp
        return ref

    gc.disable()
    try:
        ref = _run(_keep_alive_json, go)
        assert ref() is None
    finally:
        gc.enable()


def test_the_idle_pool_keeps_at_most_the_pool_size_per_host():
    async def go(client, server):
        answers = [await client.send(_post(server.url)) for _ in range(5)]  # five at once
        for resp in answers:
            await resp.read()
            resp.release()
        return [len(pool) for pool in client._pools.values()], server.connections

    kept, connections = _run(_keep_alive_json, go, upstream_pool_size="2")
    assert connections == 5 and kept == [2]


def test_an_answer_past_max_response_bytes_is_cut_while_it_is_read():
    from proxy.core.errors import UpstreamTooLarge

    async def script(reader, writer, server):
        await server.request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                     b"transfer-encoding: chunked\r\n\r\n")
        for _ in range(100):  # 100 KiB, chunked: no length to refuse it by
            writer.write(b"400\r\n" + b"x" * 1024 + b"\r\n")
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    async def go(client, server):
        resp = await client.send(_post(server.url))
        with pytest.raises(UpstreamTooLarge, match="CCP_MAX_RESPONSE_BYTES"):
            await resp.read()
        resp.close()

    _run(script, go, max_response_bytes="8KiB")


def test_a_pool_full_of_idle_connections_costs_one_take_per_request():
    """After a burst of 200 leaves 200 idle connections, each later request takes the newest one and
    looks at no other: the same connection serves them all, the other 199 stay as they were."""
    async def go(client, server):
        burst = [await client.send(_post(server.url)) for _ in range(200)]
        for resp in burst:
            await resp.read()
            resp.release()
        [pool] = client._pools.values()
        untouched = list(pool)[:-1]
        marks = [conn.last_used for conn in untouched]
        for _ in range(50):
            resp = await client.send(_post(server.url))
            await resp.read()
            resp.release()
        return (server.connections, len(pool), [conn.last_used for conn in untouched] == marks,
                all(not conn.closed for conn in untouched))

    assert _run(_keep_alive_json, go, upstream_pool_size="256") == (200, 200, True, True)
