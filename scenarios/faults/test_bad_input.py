"""Bad input gets a fitting 4xx in the Anthropic error shape, one record each, and the shim keeps serving."""
import json

import httpx
import pytest

pytestmark = [pytest.mark.faults, pytest.mark.repro_go]

JSON = {"content-type": "application/json"}


def _cases(limit: int):
    ok_body = {"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": "x"}]}
    return [
        ("invalid json", "POST", "/v1/messages", b"{\"model\": ", JSON, 400),
        ("missing model", "POST", "/v1/messages", b"{\"messages\": []}", JSON, 400),
        ("model not a string", "POST", "/v1/messages", b"{\"model\": 7}", JSON, 400),
        ("array body", "POST", "/v1/messages", b"[1,2]", JSON, 400),
        ("non-json content type", "POST", "/v1/messages", json.dumps(ok_body).encode(),
         {"content-type": "text/plain"}, 415),
        ("oversized body", "POST", "/v1/messages", b"{\"model\":\"" + b"a" * (limit + 10) + b"\"}",
         JSON, 413),
        ("unknown path", "POST", "/v2/whatever", b"{}", JSON, 404),
        ("wrong method", "GET", "/v1/messages", None, {}, 405),
    ]


def test_bad_input_is_answered_and_recorded(make_shim, mock_anthropic, mock_zai):
    limit = 1024 * 1024
    shim = make_shim({"CCP_MAX_BODY_BYTES": str(limit)})
    cases = _cases(limit)
    with httpx.Client(trust_env=False, timeout=10) as client:
        for name, method, path, body, headers, status in cases:
            r = client.request(method, f"{shim.url}{path}", content=body, headers=headers)
            assert r.status_code == status, name
            err = r.json()
            assert err["type"] == "error" and set(err["error"]) == {"type", "message"}, name
            assert err["error"]["message"] and "Traceback" not in r.text, name
            rec = shim.record_for(r.headers["x-ccp-request-id"])
            assert (rec["status"], rec["err_type"]) == (status, "bad_request"), name
        ok = client.post(f"{shim.url}/v1/messages", headers={"x-api-key": "k"},
                         json={"model": "claude-haiku-4-5", "max_tokens": 5,
                               "messages": [{"role": "user", "content": "still there?"}]})
        assert ok.status_code == 200
    assert len(shim.wait_for_records(len(cases) + 1)) == len(cases) + 1
    assert mock_anthropic.calls == [] and len(mock_zai.calls) == 1
    assert "bad_request" in shim.stderr_tail(40) or "-> 4" in shim.stderr_tail(40)


def test_twenty_megabyte_body_is_relayed(make_shim, mock_anthropic, mock_zai, keys):
    shim = make_shim()
    big = "x" * (20 * 1024 * 1024)
    body = {"model": "claude-sonnet-4-5", "max_tokens": 5,
            "messages": [{"role": "user", "content": big + " Reply with exactly: BIG_OK and nothing else."}]}
    r = httpx.post(f"{shim.url}/v1/messages", json=body, headers={"x-api-key": keys["CLIENT_API_KEY"]},
                   trust_env=False, timeout=60)
    assert r.status_code == 200, r.text[:200]
    assert r.json()["content"][0]["text"] == "BIG_OK"
    [call] = mock_anthropic.wait_for_calls(1)
    assert len(call.body) > 20 * 1024 * 1024
    assert shim.record_for(r.headers["x-ccp-request-id"])["bytes_in"] == len(call.body)
