"""`ccp quotas reload` on a real shim rebuilds the quota book from the store exactly as a restart
with the new file does: a longer window counts the older records the running book had let go of,
a quota the reload adds counts its past records (and its 429), and a fresh shim on the same store
says the same."""
import subprocess
import sys

import httpx
import pytest

from harness.probes import http_probe
from harness.shim import PROJECT_ROOT, clean_env

pytestmark = [pytest.mark.quotas]

HAIKU, SONNET = "claude-haiku-4-5-20251001", "claude-sonnet-4-5"
SHORT = """quotas:
  haiku:
    rolling: {window: 1h, tokens: 1000}
    weekly: {window: 2h, tokens: 4000}
"""
LONGER = """quotas:
  haiku:
    rolling: {window: 5h, tokens: 1000}
    weekly: {tokens: 4000}
  sonnet:
    weekly: {tokens: 100000}
    cooldown: 1h
"""
SIMS = [{"model": HAIKU, "tokens": 200, "ago": 3 * 3600},
        {"model": SONNET, "tokens": 50, "lane": "anthropic", "ago": 1800},
        {"model": SONNET, "tokens": 0, "lane": "anthropic", "status": 429, "ago": 900}]


def models(shim) -> dict:
    return httpx.get(f"{shim.url}/v1/usage", timeout=5, trust_env=False).json()["models"]


def comparable(states: dict) -> dict:
    """Every field but the seconds to a reset, which move with the clock."""
    return {p: {k: v for k, v in st.items() if k != "eta_reset"} for p, st in states.items()}


def test_reload_leaves_the_book_as_a_restart_would(make_shim, mock_anthropic, mock_zai, keys,
                                                   tmp_path):
    qfile = tmp_path / "quotas.yaml"
    qfile.write_text(SHORT)
    env = {"CCP_DEV_ENABLE": "1", "CCP_QUOTAS_FILE": str(qfile),
           "CCP_DB_PATH": str(tmp_path / "db" / "ccp.sqlite3")}
    first = make_shim(env)
    for body in SIMS:
        r = httpx.post(f"{first.url}/v1/dev/sim-usage", json=body, timeout=5, trust_env=False)
        assert r.status_code == 201, r.text
    real = []
    for model in (HAIKU, HAIKU, SONNET):
        res = http_probe(first.url, model, api_key=keys["CLIENT_API_KEY"])
        assert res.ok, res.error
        real.append(first.record_for(res.rid))
    haiku_real = sum(r["in_tokens"] + r["out_tokens"] for r in real if r["model"] == HAIKU)
    before = models(first)
    assert list(before) == ["haiku"] and before["haiku"]["rolling_tokens"] == haiku_real

    qfile.write_text(LONGER)
    out = subprocess.run([sys.executable, "-m", "proxy", "quotas", "reload", "--url", first.url],
                         env=clean_env({"CCP_LOGS_DIR": str(first.logs_dir)}), cwd=PROJECT_ROOT,
                         stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout == (f"quotas reloaded from {qfile} (2 quota(s)); the book rebuilt from 6 "
                          "stored record(s)\n")
    reloaded = models(first)
    first.stop()

    second = make_shim(env)  # a restart: the same store, started with the longer file
    restarted = models(second)
    assert comparable(reloaded) == comparable(restarted)
    assert reloaded["haiku"]["rolling_tokens"] == 200 + haiku_real  # the 3 h old record is back
    sonnet = reloaded["sonnet"]
    sonnet_real = sum(r["in_tokens"] + r["out_tokens"] for r in real if r["model"] == SONNET)
    assert (sonnet["weekly_tokens"], sonnet["limit_hits"], sonnet["block"]) == (
        50 + sonnet_real, 1, True)
    assert abs(sonnet["eta_reset"] - restarted["sonnet"]["eta_reset"]) < 60
