"""relay_stream over the shim's own HTTP/1.1 client: headers are held back only while the first
chunk is already there, and an answer that came whole ends with its last chunk."""
import asyncio
import time

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from proxy.config.settings import Settings
from proxy.core.record import new_record
from proxy.pipeline.relay import relay_stream
from proxy.upstream.base import UpstreamRequest
from proxy.upstream.h1 import H1Upstream

pytestmark = pytest.mark.quick

EVENTS = (b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":"
          b"{\"input_tokens\":3,\"output_tokens\":1}}}\n\n"
          b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\"}\n\n"
          b"event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":5}}\n\n"
          b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n")


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
        rec = new_record("rid-1", "/v1/messages")
        records.append(rec)
        timing = {"t0": time.perf_counter(), "upstream_done": None}
        return await relay_stream(request, resp, [("content-type", "text/event-stream")], rec, timing)

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
