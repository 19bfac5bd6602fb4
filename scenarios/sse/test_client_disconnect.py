"""A client that goes away mid-stream: exactly one record, and no upstream connection left behind."""
import httpx
import pytest

pytestmark = [pytest.mark.sse, pytest.mark.faults, pytest.mark.repro_go]


@pytest.mark.parametrize("fault", ["stall;seconds=30", "slow_drip;delay_ms=200"])
def test_disconnect_mid_stream(make_shim, mock_anthropic, mock_zai, keys, fault):
    shim = make_shim()
    body = {"model": "claude-haiku-4-5", "max_tokens": 5, "stream": True,
            "messages": [{"role": "user", "content": "hi"}]}
    headers = {"x-api-key": keys["CLIENT_API_KEY"], "x-mock-fault": fault, "x-mock-deltas": "200"}
    with httpx.Client(trust_env=False, timeout=15) as client:
        with client.stream("POST", f"{shim.url}/v1/messages", json=body, headers=headers) as resp:
            rid = resp.headers["x-ccp-request-id"]
            assert next(resp.iter_raw()).startswith(b"event: message_start")
        # leaving the block closes the connection mid-stream
    # the shim cancels its upstream request: the mock sees its client (the shim) go away
    mock_zai.wait_until(lambda: mock_zai.calls and mock_zai.calls[0].client_disconnected, 10)
    assert not mock_zai.calls[0].finished
    rec = shim.record_for(rid)
    assert rec["err_type"] == "client_abort"
    assert rec["sse"]["complete"] is False and rec["sse"]["events"] >= 1
    # exactly one record, and the shim keeps serving
    ok = httpx.post(f"{shim.url}/v1/messages", json={**body, "stream": False},
                    headers={"x-api-key": keys["CLIENT_API_KEY"]}, trust_env=False)
    assert ok.status_code == 200
    shim.record_for(ok.headers["x-ccp-request-id"])
    recs = shim.records()
    assert [r["rid"] for r in recs].count(rid) == 1 and len(recs) == 2
