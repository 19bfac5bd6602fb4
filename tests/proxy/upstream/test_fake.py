"""The seam's test double (proxy.upstream.fake): it answers in script order, records what it was sent,
fails loudly when a test sends more than it scripted, and drives the real app like a client would."""
import asyncio
import json

import pytest
from aiohttp.test_utils import TestClient, TestServer

from proxy.config.load import load_settings
from proxy.core.errors import UpstreamError
from proxy.server.app import create_app
from proxy.upstream.base import StreamIdle, UpstreamRequest
from proxy.upstream.fake import FakeResponse, FakeUpstream

pytestmark = pytest.mark.quick


def _request(url="http://up.test/v1/messages", body=b"{}"):
    return UpstreamRequest("POST", url, {"x-api-key": "k"}, body, False)


def test_answers_come_in_script_order_and_every_request_is_kept():
    second = FakeResponse.json({"n": 2}, status=201)
    fake = FakeUpstream(FakeResponse.json({"n": 1}), lambda req: second, UpstreamError("refused"))

    async def go():
        await fake.start()
        first = await fake.send(_request(body=b'{"a": 1}'))
        assert (first.status, json.loads(await first.read())) == (200, {"n": 1})
        assert await fake.send(_request()) is second
        with pytest.raises(UpstreamError, match="refused"):
            await fake.send(_request())
        with pytest.raises(UpstreamError, match="no answer scripted for POST http://up.test"):
            await fake.send(_request())
        await fake.close()

    asyncio.run(go())
    assert fake.started and fake.closed and len(fake.requests) == 4
    assert fake.last()[2] == {} and json.loads(fake.requests[0].body) == {"a": 1}


def test_a_stream_can_break_at_a_chosen_chunk_and_hold_at_a_gate():
    async def go():
        broken = FakeResponse.sse([b"a", b"b", b"c"], fail_after=2, fail_with=StreamIdle("idle"))
        seen = []
        with pytest.raises(StreamIdle):
            async for chunk in broken.chunks():
                seen.append(chunk)
        assert seen == [b"a", b"b"] and broken.is_sse

        gate = asyncio.Event()
        held = FakeResponse.sse([b"first", b"second"], gate=gate)
        it = held.chunks().__aiter__()
        assert await it.__anext__() == b"first"
        pending = asyncio.ensure_future(it.__anext__())
        await asyncio.sleep(0)
        assert not pending.done()  # held until the gate opens
        gate.set()
        assert await pending == b"second"

    asyncio.run(go())


def test_the_app_sends_through_the_double_as_through_a_client(tmp_path):
    settings = load_settings({"CCP_LOGS_DIR": str(tmp_path), "CCP_ANTHROPIC_BASE_URL": "http://anth.test"})
    fake = FakeUpstream(FakeResponse.json({"type": "message", "usage": {"input_tokens": 3,
                                                                        "output_tokens": 2}}))

    async def go():
        async with TestClient(TestServer(create_app(settings, fake))) as client:
            resp = await client.post("/v1/messages", json={"model": "claude-sonnet-4-5"},
                                     headers={"x-api-key": "sk-ant-client"})
            assert resp.status == 200 and (await resp.json())["type"] == "message"

    asyncio.run(go())
    url, headers, body = fake.last()
    assert url == "http://anth.test/v1/messages" and headers["x-api-key"] == "sk-ant-client"
    assert body == {"model": "claude-sonnet-4-5"}
    [record] = [json.loads(line) for line in (tmp_path / "usage.jsonl").read_text().splitlines()]
    assert (record["status"], record["in_tokens"], record["out_tokens"]) == (200, 3, 2)
