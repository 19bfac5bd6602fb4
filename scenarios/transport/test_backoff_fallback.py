"""Backoff on 429/503 honouring Retry-After, and the fallback lane on upstream failure."""
import socket

import pytest

from harness.gates import fallbacks_reported, no_haiku_on_anthropic
from harness.probes import http_probe

pytestmark = [pytest.mark.faults]


def test_backoff_retries_and_counts(make_shim, mock_anthropic, mock_zai, keys):
    shim = make_shim({"CCP_ENABLE_BACKOFF": "1", "CCP_BACKOFF_MAX_RETRIES": "2"})
    mock_anthropic.script("status=429", times=2)  # two refusals (retry-after: 1), then an answer
    res = http_probe(shim.url, "claude-sonnet-4-5", api_key=keys["CLIENT_API_KEY"])
    assert res.ok
    rec = shim.record_for(res.rid)
    assert rec["retries"] == 2 and rec["status"] == 200 and rec["err_type"] is None
    assert len(mock_anthropic.calls) == 3


def test_backoff_gives_up_and_passes_the_status_through(make_shim, mock_anthropic, mock_zai, keys):
    shim = make_shim({"CCP_ENABLE_BACKOFF": "1", "CCP_BACKOFF_MAX_RETRIES": "1"})
    mock_anthropic.set_default("status=503")
    res = http_probe(shim.url, "claude-sonnet-4-5", stream=True, api_key=keys["CLIENT_API_KEY"])
    assert res.status == 503
    rec = shim.record_for(res.rid)
    assert rec["retries"] == 1 and rec["err_type"] == "upstream_5xx" and len(mock_anthropic.calls) == 2


def test_no_backoff_by_default(make_shim, mock_anthropic, mock_zai, keys):
    shim = make_shim()
    mock_anthropic.script("status=429")
    res = http_probe(shim.url, "claude-sonnet-4-5", api_key=keys["CLIENT_API_KEY"])
    assert res.status == 429 and shim.record_for(res.rid)["retries"] == 0


def test_fallback_lane_on_a_dead_zai_lane(make_shim, mock_anthropic, mock_zai, keys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    shim = make_shim({"CCP_ZAI_BASE_URL": f"http://127.0.0.1:{dead}/api/anthropic",
                      "CCP_FALLBACK_LANE": "anthropic"}, wait="/healthz")
    res = http_probe(shim.url, "claude-haiku-4-5", stream=True, api_key=keys["CLIENT_API_KEY"],
                     prompt="Reply with exactly: FB_OK and nothing else.")
    assert res.ok and res.text == "FB_OK" and res.lane == "anthropic"
    rec = shim.record_for(res.rid)
    assert (rec["lane"], rec["decision"], rec["reason"]) == ("anthropic", "fallback", "fallback:net")
    assert "header_mode" not in rec
    # the anthropic mock got the lane's own credential, never the Z.AI key
    assert mock_anthropic.calls[0].headers["x-api-key"] == keys["CLIENT_API_KEY"]
    assert keys["ZAI_API_KEY"] not in str(mock_anthropic.calls[0].headers)
    recs = shim.records()
    assert no_haiku_on_anthropic(recs).ok
    report = fallbacks_reported(recs)
    assert report.ok and "1 request(s) fell back (fallback:net: 1)" in report.detail
