"""Upstream failures: passed through when the upstream answered, 502/504 when it did not; always recorded."""
import socket

import httpx
import pytest

from harness.probes import http_probe

pytestmark = [pytest.mark.faults, pytest.mark.repro_go]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_upstream_is_502_net(make_shim):
    port = _closed_port()
    shim = make_shim({"CCP_ANTHROPIC_BASE_URL": f"http://127.0.0.1:{port}"}, wait="/healthz")
    ready = httpx.get(f"{shim.url}/readyz", trust_env=False, timeout=10)
    assert ready.status_code == 503
    assert ready.json()["providers"]["anthropic"]["reachable"] is False
    for stream in (False, True):
        res = http_probe(shim.url, "claude-sonnet-4-5", stream=stream, api_key="k")
        assert res.status == 502
        body = httpx.Response(502, content=res.raw).json()
        assert body["type"] == "error" and body["error"]["type"] == "api_error"
        rec = shim.record_for(res.rid)
        assert (rec["status"], rec["err_type"], rec["lane"]) == (502, "net", "anthropic")


@pytest.mark.parametrize("status", [400, 401, 429, 500, 529])
@pytest.mark.parametrize("stream", [False, True], ids=["nonstream", "stream"])
def test_upstream_error_status_passes_through(make_shim, mock_anthropic, mock_zai, keys, status, stream):
    shim = make_shim()
    res = http_probe(shim.url, "claude-haiku-4-5", stream=stream, api_key=keys["CLIENT_API_KEY"],
                     extra_headers={"x-mock-fault": f"status={status}"})
    [call] = mock_zai.wait_for_calls(1)
    assert res.status == status and res.raw == call.sent
    rec = shim.record_for(res.rid)
    assert rec["upstream_status"] == status
    assert rec["err_type"] == ("upstream_5xx" if status >= 500 else "upstream_4xx")
    if status == 429:
        assert res.headers.get("retry-after") == "1"


def test_reset_mid_stream_tells_the_client_and_records_it(make_shim, mock_anthropic, mock_zai, keys):
    shim = make_shim()
    res = http_probe(shim.url, "claude-sonnet-4-5", stream=True, api_key=keys["CLIENT_API_KEY"],
                     extra_headers={"x-mock-fault": "reset_mid_stream;after=3"})
    [call] = mock_anthropic.wait_for_calls(1)
    assert res.raw.startswith(call.sent) and len(call.sent) > 0
    tail = res.raw[len(call.sent):]
    assert tail.startswith(b"event: error\n") and b"api_error" in tail
    rec = shim.record_for(res.rid)
    assert rec["err_type"] == "net" and rec["sse"]["complete"] is False
    assert rec["reason"] in ("upstream_reset", "stream_incomplete")


def test_reset_before_headers_is_502(make_shim, mock_anthropic, mock_zai, keys):
    shim = make_shim()
    res = http_probe(shim.url, "claude-sonnet-4-5", api_key=keys["CLIENT_API_KEY"],
                     extra_headers={"x-mock-fault": "reset_before_headers"})
    assert res.status == 502
    assert shim.record_for(res.rid)["err_type"] == "net"


def test_idle_stream_is_cut(make_shim, mock_anthropic, mock_zai, keys):
    shim = make_shim({"CCP_SSE_IDLE_TIMEOUT": "500ms"})
    res = http_probe(shim.url, "claude-sonnet-4-5", stream=True, api_key=keys["CLIENT_API_KEY"],
                     extra_headers={"x-mock-fault": "stall;seconds=30"})
    assert res.status == 200 and b"event: error" in res.raw
    rec = shim.record_for(res.rid)
    assert (rec["err_type"], rec["reason"]) == ("idle_timeout", "stream_timeout")
