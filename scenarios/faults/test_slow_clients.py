"""Slow clients against the real shim process: 1,000 connections trickling their request heads are
cut after CCP_CLIENT_HEADER_TIMEOUT while the shim goes on serving others; trickled bodies are a 408
in the protocol's shape with one record each, and never reach an upstream."""
from __future__ import annotations

import asyncio
import json
import resource
import time

import httpx
import pytest

pytestmark = [pytest.mark.faults]

TRICKLERS = 1_000
HEAD_TIMEOUT = 3.0
BODY_TIMEOUT = 3.0
PACE = 0.5  # seconds between a trickler's bytes: the trickle itself, not a synchronisation
MARGIN = 10.0  # how long past its timeout a cut may take on a loaded CI machine


@pytest.fixture(autouse=True)
def _enough_fds():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 2 * TRICKLERS + 512
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def _trickle(port: int, head: bytes, byte: bytes) -> tuple[float, bytes]:
    """Open a connection, send `head`, then one `byte` every PACE seconds until the shim closes
    it; (how long it was held, what the shim said)."""
    loop = asyncio.get_running_loop()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    t0 = loop.time()
    writer.write(head)
    said = asyncio.ensure_future(reader.read())  # everything, to the shim's close
    try:
        while not said.done() and loop.time() - t0 < HEAD_TIMEOUT + BODY_TIMEOUT + MARGIN:
            try:
                writer.write(byte)
            except (ConnectionError, RuntimeError):
                break
            await asyncio.wait([said], timeout=PACE)
        try:
            data = await asyncio.wait_for(said, MARGIN)
        except ConnectionError:
            data = b""
        return loop.time() - t0, data
    finally:
        writer.close()


def _model_body(text: str) -> dict:
    return {"model": "claude-sonnet-4-5", "max_tokens": 5,
            "messages": [{"role": "user", "content": text}]}


def test_a_thousand_trickled_heads_are_cut_and_others_are_served(make_shim, mock_anthropic, keys):
    shim = make_shim({"CCP_CLIENT_HEADER_TIMEOUT": f"{HEAD_TIMEOUT}s"})
    head = b"POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nx-slow: "

    async def main():
        tricklers = [asyncio.ensure_future(_trickle(shim.port, head, b"a")) for _ in range(TRICKLERS)]
        # while all of them are held: the shim serves a model request and its health endpoint
        async with httpx.AsyncClient(trust_env=False, timeout=HEAD_TIMEOUT * 3) as client:
            t0 = time.monotonic()
            ok = await client.post(f"{shim.url}/v1/messages", json=_model_body("served"),
                                   headers={"x-api-key": keys["CLIENT_API_KEY"]})
            served_in = time.monotonic() - t0
            health = await client.get(f"{shim.url}/healthz")
        return ok, served_in, health, await asyncio.gather(*tricklers)

    ok, served_in, health, held = asyncio.run(main())
    assert ok.status_code == 200 and health.status_code == 200
    assert served_in < HEAD_TIMEOUT, served_in  # not queued behind the tricklers
    [call] = mock_anthropic.calls  # what the upstream saw: the one real request, nothing else
    assert call.json["messages"][0]["content"] == "served"
    times = sorted(t for t, _ in held)
    cut = [data for _, data in held if data.startswith(b"HTTP/1.1 408")]
    # each is told 408 and half-closed, then closed (proxy.server.connections.LINGER_S); on a
    # machine too busy to read it within that, a reset may still drop a 408: closed in time anyway
    assert all(data == b"" or data.startswith(b"HTTP/1.1 408") for _, data in held)
    assert len(cut) >= TRICKLERS * 9 // 10, len(cut)
    print(f"held {times[0]:.2f}..{times[-1]:.2f}s, served in {served_in:.3f}s, 408 read by {len(cut)}")
    assert times[0] >= HEAD_TIMEOUT - 0.5 and times[-1] < HEAD_TIMEOUT + MARGIN, (times[0], times[-1])
    assert b"CCP_CLIENT_HEADER_TIMEOUT" in cut[0]
    recs = shim.wait_for_records(1)
    assert [r["status"] for r in recs] == [200]  # a cut head reached no handler: no record
    assert httpx.get(f"{shim.url}/healthz", trust_env=False).status_code == 200


def test_trickled_bodies_are_408_each_with_a_record_and_reach_no_upstream(make_shim, mock_anthropic,
                                                                         mock_zai):
    shim = make_shim({"CCP_CLIENT_BODY_TIMEOUT": f"{BODY_TIMEOUT}s"})
    n = 100
    heads = [
        b"POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        b"content-length: 100000\r\n\r\n{\"model\": \"claude-haiku-4-5\", \"messages\": [",
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        b"transfer-encoding: chunked\r\n\r\n1\r\n{\r\n",
    ]
    bytes_ = [b" ", b"1\r\n \r\n"]

    async def main():
        return await asyncio.gather(*(_trickle(shim.port, heads[i % 2], bytes_[i % 2])
                                      for i in range(n)))

    held = asyncio.run(main())
    read = 0
    for i, (took, data) in enumerate(held):
        assert BODY_TIMEOUT - 0.5 <= took < BODY_TIMEOUT + MARGIN, took
        if data == b"":  # the 408 lost to a reset (a byte sent after it): closed in time anyway
            continue
        assert data.startswith(b"HTTP/1.1 408"), data[:200]
        read += 1
        body = json.loads(data.split(b"\r\n\r\n", 1)[1])
        err = body["error"]
        assert "CCP_CLIENT_BODY_TIMEOUT" in err["message"]
        assert (body.get("type") == "error") is (i % 2 == 0)  # Anthropic's shape, OpenAI's
    assert read >= n // 10, read
    recs = shim.wait_for_records(n)
    assert sorted((r["path"], r["status"], r["err_type"]) for r in recs) == sorted(
        [("/v1/messages", 408, "bad_request")] * (n // 2)
        + [("/v1/chat/completions", 408, "bad_request")] * (n // 2))
    assert mock_anthropic.calls == [] and mock_zai.calls == []
