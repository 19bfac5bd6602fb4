"""proxy.server.connections: slow heads and bodies are cut, idle connections closed, a cap answered
503; on raw sockets to the real app (its upstream a fake that records what it was sent)."""
from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp import web

from proxy.config.load import load_settings
from proxy.pipeline.state import STATE
from proxy.server.app import create_app
from proxy.server.connections import BoundedRunner

pytestmark = pytest.mark.quick


class Upstream:
    def __init__(self):
        self.requests = []

    async def send(self, request):  # (never reached by these tests' refused requests)
        self.requests.append(request)
        raise AssertionError("no request should reach the upstream")


def serve(tmp_path, env, go):
    settings = load_settings({"CCP_LOGS_DIR": str(tmp_path), "CCP_PERSIST": "0", **env})
    upstream = Upstream()

    async def main():
        app = create_app(settings, upstream)
        runner = BoundedRunner(app, settings, handler_cancellation=True, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            await go(port, runner, app[STATE])
        finally:
            await runner.cleanup()

    asyncio.run(main())
    usage = tmp_path / "usage.jsonl"
    records = [json.loads(x) for x in usage.read_text().splitlines()] if usage.exists() else []
    return records, upstream


async def read_all(reader, timeout):
    """Everything until the server closes (b"" on a reset)."""
    out = b""
    async with asyncio.timeout(timeout):
        while chunk := await reader.read(65536):
            out += chunk
    return out


async def get(port, path="/healthz"):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
    data = await read_all(reader, 5)
    writer.close()
    return data


def test_a_trickled_head_is_cut_after_the_header_timeout_and_others_are_served(tmp_path):
    async def go(port, runner, state):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        for _ in range(3):  # still trickling: the timer does not restart with each byte
            writer.write(b"x")
            await asyncio.sleep(0.1)  # (the trickle itself, not a synchronisation)
        assert (await get(port)).startswith(b"HTTP/1.1 200")  # others are served meanwhile
        data = await read_all(reader, 3)
        waited = loop.time() - t0
        assert data.startswith(b"HTTP/1.1 408") and b"CCP_CLIENT_HEADER_TIMEOUT" in data
        assert 0.4 <= waited < 2.0, waited
        assert runner.counters.heads_late == 1
        writer.close()
    records, upstream = serve(tmp_path, {"CCP_CLIENT_HEADER_TIMEOUT": "500ms"}, go)
    assert not upstream.requests and not records  # no request reached a handler


def test_a_head_in_pieces_within_the_timeout_is_served(tmp_path):
    async def go(port, runner, state):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for piece in (b"GET /healthz HTTP/1.1\r\n", b"Host: 127.0.0.1\r\n", b"\r\n"):
            writer.write(piece)
            await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        writer.close()
        assert runner.counters.heads_late == 0
    serve(tmp_path, {"CCP_CLIENT_HEADER_TIMEOUT": "2s"}, go)


def test_a_slow_model_body_is_a_408_with_a_record_and_never_reaches_the_upstream(tmp_path):
    async def go(port, runner, state):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"content-type: application/json\r\ncontent-length: 100\r\n\r\n{\"mod")
        data = await read_all(reader, 3)
        assert data.startswith(b"HTTP/1.1 408")
        body = json.loads(data.split(b"\r\n\r\n", 1)[1])
        assert body["type"] == "error" and "CCP_CLIENT_BODY_TIMEOUT" in body["error"]["message"]
        assert runner.counters.bodies_late == 1
        writer.close()
    records, upstream = serve(tmp_path, {"CCP_CLIENT_BODY_TIMEOUT": "300ms"}, go)
    assert not upstream.requests
    assert [(r["status"], r["err_type"]) for r in records] == [(408, "bad_request")]


def test_a_slow_admin_body_is_a_408(tmp_path):
    async def go(port, runner, state):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /v1/sessions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"content-type: application/json\r\ncontent-length: 50\r\n\r\n{")
        data = await read_all(reader, 3)
        assert data.startswith(b"HTTP/1.1 408") and b"CCP_CLIENT_BODY_TIMEOUT" in data
        assert not state.sessions.list()
        writer.close()
    serve(tmp_path, {"CCP_CLIENT_BODY_TIMEOUT": "300ms"}, go)


def test_an_idle_connection_is_closed_after_the_idle_timeout(tmp_path):
    async def go(port, runner, state):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        assert await read_all(reader, 10) == b""  # closed without a word: it asked nothing
        assert loop.time() - t0 < 9
        writer.close()
    # (aiohttp checks the keep-alive timer at whole seconds past its threshold: 1 s is the least)
    serve(tmp_path, {"CCP_CLIENT_IDLE_TIMEOUT": "1s"}, go)


def test_past_the_connection_cap_requests_are_503_overloaded(tmp_path):
    async def go(port, runner, state):
        held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
        for reader, writer in held:  # each served: they are within the cap
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
        data = await get(port)
        assert data.startswith(b"HTTP/1.1 503") and b"overloaded_error" in data
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"content-type: application/json\r\ncontent-length: 2\r\n\r\n{}")
        data = await read_all(reader, 5)
        assert data.startswith(b"HTTP/1.1 503")
        body = json.loads(data.split(b"\r\n\r\n", 1)[1])
        assert body["error"]["type"] == "overloaded_error"  # (OpenAI's shape on its path)
        for _, w in [*held, (reader, writer)]:
            w.close()
            await w.wait_closed()
        assert runner.counters.over_cap == 2
    records, upstream = serve(tmp_path, {"CCP_MAX_CONNECTIONS": "2"}, go)
    assert [(r["status"], r["err_type"], r["reason"]) for r in records] == [
        (503, "overloaded", "refused")]
