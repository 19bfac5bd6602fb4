"""`/metrics` in Prometheus text: what the records say, and streams in flight while they are."""
import re

import httpx
import pytest

from harness.probes import http_probe

pytestmark = [pytest.mark.repro_go]


def _value(text, name, labels=""):
    m = re.search(rf"^{re.escape(name)}{re.escape(labels)} (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


def test_metrics_follow_the_records(make_shim, mock_anthropic, mock_zai, keys):
    shim = make_shim()
    for model, stream in (("claude-haiku-4-5", True), ("claude-haiku-4-5", False), ("claude-sonnet-4-5", True)):
        assert http_probe(shim.url, model, stream=stream, api_key=keys["CLIENT_API_KEY"]).ok
    http_probe(shim.url, "claude-sonnet-4-5", api_key="k", extra_headers={"x-mock-fault": "status=529"})
    httpx.post(f"{shim.url}/v1/messages", content=b"{", headers={"content-type": "application/json"},
               trust_env=False)
    shim.wait_for_records(5)
    r = httpx.get(f"{shim.url}/metrics", trust_env=False)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert _value(text, "ccp_requests_total", '{decision="to_zai",lane="zai",op="stream",status="200"}') == 1
    assert _value(text, "ccp_requests_total", '{decision="to_anth",lane="anthropic",op="nonstream",status="529"}') == 1
    assert _value(text, "ccp_upstream_errors_total", '{err_type="upstream_5xx"}') == 1
    assert _value(text, "ccp_upstream_errors_total", '{err_type="bad_request"}') == 1
    assert _value(text, "ccp_first_byte_seconds_count", '{lane="zai",op="stream"}') == 1
    assert _value(text, "ccp_inflight_streams") == 0
    assert _value(text, "ccp_relayed_bytes_total", '{direction="out"}') > 0


def test_inflight_gauge_counts_open_streams(make_shim, mock_anthropic, mock_zai, keys):
    shim = make_shim()
    body = {"model": "claude-sonnet-4-5", "max_tokens": 5, "stream": True,
            "messages": [{"role": "user", "content": "hi"}]}
    with httpx.Client(trust_env=False, timeout=15) as client:
        with client.stream("POST", f"{shim.url}/v1/messages", json=body,
                           headers={"x-api-key": "k", "x-mock-fault": "stall;seconds=30"}) as resp:
            chunks = resp.iter_raw()  # kept referenced: a dropped generator closes the response
            next(chunks)
            text = client.get(f"{shim.url}/metrics").text
            assert _value(text, "ccp_inflight_streams") == 1
            assert _value(text, "ccp_tasks") >= 1
    shim.wait_for_records(1)
    assert _value(httpx.get(f"{shim.url}/metrics", trust_env=False).text, "ccp_inflight_streams") == 0
