"""Many concurrent requests: one whole record each, never split or interleaved."""
import asyncio
import json

import httpx
import pytest

pytestmark = [pytest.mark.faults, pytest.mark.repro_go]

N = 120


def test_concurrent_requests_each_leave_one_whole_line(make_shim, mock_anthropic, mock_zai, keys):
    shim = make_shim()

    async def one(client, i):
        model = "claude-haiku-4-5" if i % 2 else "claude-sonnet-4-5"
        body = {"model": model, "max_tokens": 5, "stream": i % 3 == 0,
                "messages": [{"role": "user", "content": f"Reply with exactly: C{i} and nothing else."}]}
        r = await client.post(f"{shim.url}/v1/messages", json=body,
                              headers={"x-api-key": keys["CLIENT_API_KEY"], "x-mock-deltas": "40"})
        assert r.status_code == 200
        return r.headers["x-ccp-request-id"]

    async def main():
        limits = httpx.Limits(max_connections=60)
        async with httpx.AsyncClient(trust_env=False, timeout=30, limits=limits) as client:
            return await asyncio.gather(*(one(client, i) for i in range(N)))

    rids = asyncio.run(main())
    assert len(set(rids)) == N
    shim.wait_for_records(N)
    lines = shim.usage_path.read_bytes().split(b"\n")
    assert lines[-1] == b""
    recs = [json.loads(line) for line in lines[:-1]]
    assert sorted(r["rid"] for r in recs) == sorted(rids)
    assert sum(1 for r in recs if r["lane"] == "zai") == N // 2
    assert len(mock_anthropic.calls) + len(mock_zai.calls) == N
