"""Quotas end to end on a real shim: sim-usage to 85 % → warn; real haiku requests past 100 % →
block, and (with the exchange wiring) `decision: quota_block` on the anthropic lane; a restart keeps
the counts; a store that cannot be written degrades to JSONL only, and requests keep flowing."""

import httpx
import pytest

from harness.probe_kinds import probe
from harness.shim import wait_until

pytestmark = [pytest.mark.quotas]

HAIKU = "claude-haiku-4-5-20251001"
QUOTAS = """quotas:
  haiku:
    rolling: {window: 5h, tokens: 1000}
    weekly: {tokens: 100000}
    warn_pct: 80
    fallback_lane: anthropic
"""


@pytest.fixture
def quota_env(tmp_path):
    qfile = tmp_path / "quotas.yaml"
    qfile.write_text(QUOTAS)
    return {"CCP_DEV_ENABLE": "1", "CCP_QUOTAS_FILE": str(qfile),
            "CCP_DB_PATH": str(tmp_path / "db" / "ccp.sqlite3")}


def usage(shim) -> dict:
    return httpx.get(f"{shim.url}/v1/usage", timeout=5, trust_env=False).json()["models"]["haiku"]


def drive_past_100(shim, keys) -> list:
    """85 % by the dev endpoint, then real haiku requests until the quota blocks."""
    r = httpx.post(f"{shim.url}/v1/dev/sim-usage", json={"model": HAIKU, "pct": 85},
                   timeout=5, trust_env=False)
    assert r.status_code == 201
    st = usage(shim)
    assert (st["rolling_pct"], st["warn"], st["block"]) == (85.0, True, False)
    results = []
    while not usage(shim)["block"]:
        assert len(results) < 60, f"60 requests did not exhaust the quota: {usage(shim)}"
        res = probe("http", shim.url, HAIKU, api_key=keys["CLIENT_API_KEY"])
        assert res.ok, res.error
        shim.record_for(res.rid)  # the record is written (and counted) before the next look
        results.append(res)
    return results


def test_warn_then_block_with_real_requests(make_shim, mock_anthropic, mock_zai, keys, quota_env):
    shim = make_shim(quota_env)
    results = drive_past_100(shim, keys)
    st = usage(shim)
    assert st["block"] and st["rolling_pct"] >= 100.0 and st["eta_reset"] > 0
    # every request before the block went to zai, and each one counted its real tokens
    recs = [shim.record_for(r.rid) for r in results]
    assert {(r["lane"], r["decision"]) for r in recs} == {("zai", "to_zai")}
    counted = sum(r["in_tokens"] + r["out_tokens"] for r in recs)
    assert st["rolling_tokens"] == 850 + counted
    assert len(mock_zai.calls) == len(results) and mock_anthropic.calls == []


def test_blocked_haiku_goes_to_the_fallback_lane(make_shim, mock_anthropic, mock_zai, keys,
                                                  quota_env):
    shim = make_shim(quota_env)
    drive_past_100(shim, keys)
    zai_calls = len(mock_zai.calls)
    res = probe("http", shim.url, HAIKU, api_key=keys["CLIENT_API_KEY"])
    assert res.ok and res.lane == "anthropic"
    rec = shim.record_for(res.rid)
    assert (rec["lane"], rec["decision"]) == ("anthropic", "quota_block")
    assert "header_mode" not in rec
    assert len(mock_zai.calls) == zai_calls and len(mock_anthropic.calls) == 1
    assert mock_anthropic.calls[0].headers["x-api-key"] == keys["CLIENT_API_KEY"]


def test_a_restart_keeps_the_counts(make_shim, mock_anthropic, mock_zai, keys, quota_env):
    first = make_shim(quota_env)
    httpx.post(f"{first.url}/v1/dev/sim-usage", json={"model": HAIKU, "pct": 40}, timeout=5,
               trust_env=False)
    for _ in range(2):
        res = probe("http", first.url, HAIKU, api_key=keys["CLIENT_API_KEY"])
        assert res.ok
        first.record_for(res.rid)
    before = usage(first)
    assert before["rolling_tokens"] > 400
    first.stop()
    second = make_shim(quota_env)  # a new logs folder, the same store
    after = usage(second)
    assert (after["rolling_tokens"], after["weekly_tokens"]) == (
        before["rolling_tokens"], before["weekly_tokens"])
    samples = httpx.get(f"{second.url}/v1/usage/samples?since=-1h", timeout=5,
                        trust_env=False).json()
    assert samples["count"] == 3 and {s["source"] for s in samples["samples"]} == {"sim", "shim"}
    rollups = httpx.get(f"{second.url}/v1/usage/rollups?granularity=hour", timeout=5,
                        trust_env=False).json()["rollups"]
    assert sum(r["requests"] for r in rollups) == 3


def test_unwritable_store_degrades_to_jsonl(make_shim, mock_anthropic, mock_zai, keys, quota_env,
                                            tmp_path):
    blocker = tmp_path / "file.txt"  # a path under a regular file fails even for root
    blocker.write_text("not a folder")
    shim = make_shim({**quota_env, "CCP_DB_PATH": str(blocker / "ccp.sqlite3")})
    rids = []
    for model in (HAIKU, "claude-sonnet-4-5", HAIKU):
        res = probe("http", shim.url, model, api_key=keys["CLIENT_API_KEY"])
        assert res.ok, res.error
        rids.append(res.rid)
    records = shim.wait_for_records(3)
    assert [r["rid"] for r in records] == rids  # the JSONL log has every request
    metrics = httpx.get(f"{shim.url}/metrics", timeout=5, trust_env=False).text
    assert "ccp_store_write_errors_total 3.0" in metrics
    assert "ccp_store_writes_total 0.0" in metrics
    lines = wait_until(lambda: [ln for ln in shim.stderr_tail(200).splitlines()
                                if "sink store" in ln], 5, "the store's log line")
    assert len(lines) == 1 and "JSONL only" in lines[0]
    # the quota book still counts from the records
    assert usage(shim)["rolling_tokens"] == sum(
        r["in_tokens"] + r["out_tokens"] for r in records if r["model"] == HAIKU)
