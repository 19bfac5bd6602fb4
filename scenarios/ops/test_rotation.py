"""Rotation under load: 200 concurrent requests across several rotations, every record exactly once."""
import asyncio
import json
import re
import subprocess
import sys

import httpx
import pytest

from harness.shim import PROJECT_ROOT, clean_env

pytestmark = [pytest.mark.faults]

N = 200


def test_every_record_once_across_rotations(make_shim, mock_anthropic, mock_zai, keys):
    shim = make_shim({"MAX_LOG_BYTES": "40KB"})

    async def main():
        async with httpx.AsyncClient(trust_env=False, timeout=30,
                                     limits=httpx.Limits(max_connections=100)) as client:
            async def one(i):
                r = await client.post(f"{shim.url}/v1/messages", headers={"x-api-key": "k"},
                                      json={"model": "claude-haiku-4-5" if i % 2 else "claude-sonnet-4-5",
                                            "max_tokens": 5, "stream": i % 3 == 0,
                                            "messages": [{"role": "user", "content": f"n{i}"}]})
                assert r.status_code == 200
                return r.headers["x-ccp-request-id"]
            return await asyncio.gather(*(one(i) for i in range(N)))

    rids = asyncio.run(main())
    files = sorted(shim.logs_dir.glob("usage.jsonl*"))
    seen = []
    for f in files:
        raw = f.read_bytes()
        assert raw.endswith(b"\n")
        seen += [json.loads(line)["rid"] for line in raw.split(b"\n")[:-1]]  # a torn line fails here
    assert len(files) >= 4, [f.name for f in files]  # several rotations happened
    assert sorted(seen) == sorted(rids)  # each exactly once
    metrics = httpx.get(f"{shim.url}/metrics", trust_env=False).text
    assert float(re.search(r"^ccp_log_rotations_total (\S+)$", metrics, re.M).group(1)) == len(files) - 1


def test_logs_rotate_while_running(make_shim, mock_anthropic, mock_zai):
    shim = make_shim()
    first = httpx.post(f"{shim.url}/v1/messages", headers={"x-api-key": "k"}, trust_env=False,
                       json={"model": "claude-sonnet-4-5", "max_tokens": 5, "messages": [{"role": "user", "content": "a"}]})
    shim.record_for(first.headers["x-ccp-request-id"])
    out = subprocess.run([sys.executable, "-m", "proxy", "logs-rotate"], cwd=PROJECT_ROOT, capture_output=True,
                         text=True, env=clean_env({"CCP_LOGS_DIR": str(shim.logs_dir)}), timeout=30)
    assert out.returncode == 0 and "usage.jsonl.1" in out.stdout
    second = httpx.post(f"{shim.url}/v1/messages", headers={"x-api-key": "k"}, trust_env=False,
                        json={"model": "claude-sonnet-4-5", "max_tokens": 5, "messages": [{"role": "user", "content": "b"}]})
    rid = second.headers["x-ccp-request-id"]
    shim.record_for(rid)  # lands in the new usage.jsonl
    assert json.loads((shim.logs_dir / "usage.jsonl.1").read_text())["rid"] == first.headers["x-ccp-request-id"]
