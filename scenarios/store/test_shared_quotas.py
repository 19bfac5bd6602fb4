"""Quotas across shims on one PostgreSQL store: what one shim answered counts against the quota on
the others (each rebuilds its book from the shared store every CCP_QUOTA_SYNC), so a quota that the
traffic through shim A exhausted blocks haiku on shim B too (`decision: quota_block`)."""
from __future__ import annotations

import httpx
import pytest

from harness.keys import lane_env
from harness.probe_kinds import probe
from harness.shim import ShimProcess, wait_until

pytestmark = [pytest.mark.store, pytest.mark.quotas]

HAIKU = "claude-haiku-4-5-20251001"
QUOTAS = """quotas:
  haiku:
    rolling: {window: 5h, tokens: 1000}
    weekly: {tokens: 100000}
    warn_pct: 80
    fallback_lane: anthropic
"""


def usage(shim) -> dict:
    return httpx.get(f"{shim.url}/v1/usage", timeout=5, trust_env=False).json()["models"]["haiku"]


def test_a_quota_exhausted_through_one_shim_blocks_on_the_other(
        tmp_path, pg_url, mock_anthropic, mock_zai, keys):
    qfile = tmp_path / "quotas.yaml"
    qfile.write_text(QUOTAS)
    env = {**lane_env(mock_anthropic.base_url, mock_zai.zai_base_url), "CCP_STORE_URL": pg_url,
           "CCP_QUOTAS_FILE": str(qfile), "CCP_DEV_ENABLE": "1", "CCP_QUOTA_SYNC": "0.2s"}
    a = ShimProcess(tmp_path / "a", {**env, "CCP_INSTANCE": "a"}, ready_path="/readyz")
    b = ShimProcess(tmp_path / "b", {**env, "CCP_INSTANCE": "b"}, ready_path="/readyz")
    with a, b:
        r = httpx.post(f"{a.url}/v1/dev/sim-usage", json={"model": HAIKU, "pct": 85}, timeout=5,
                       trust_env=False)
        assert r.status_code == 201
        # B counts what A recorded, once it has re-read the store
        wait_until(lambda: usage(b)["rolling_pct"] == 85.0, 10, "B to see A's 85 %")
        sent = 0
        while not usage(a)["block"]:
            assert sent < 60, usage(a)
            res = probe("http", a.url, HAIKU, api_key=keys["CLIENT_API_KEY"])
            assert res.ok and res.lane == "zai", res.error
            a.record_for(res.rid)
            sent += 1
        wait_until(lambda: usage(b)["block"], 10, "B to block what A exhausted")
        assert usage(b)["rolling_tokens"] == usage(a)["rolling_tokens"]
        res = probe("http", b.url, HAIKU, api_key=keys["CLIENT_API_KEY"])
        assert res.ok and res.lane == "anthropic"
        rec = b.record_for(res.rid)
        assert (rec["lane"], rec["decision"]) == ("anthropic", "quota_block")
