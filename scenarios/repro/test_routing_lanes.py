"""Haiku goes to the zai mock, sonnet and opus to the anthropic mock — through raw HTTP and the SDK."""
import pytest

from harness.probe_kinds import probe

pytestmark = [pytest.mark.repro, pytest.mark.repro_go]

CASES = [("claude-haiku-4-5-20251001", "zai", "to_zai"), ("claude-haiku-5-5", "zai", "to_zai"),
         ("claude-sonnet-4-5-20250929", "anthropic", "to_anth"),
         ("claude-opus-4-1-20250805", "anthropic", "to_anth")]


@pytest.mark.parametrize("kind", ["http", "sdk"])
@pytest.mark.parametrize("stream", [False, True], ids=["nonstream", "stream"])
def test_each_model_lands_on_its_lane(make_shim, mock_anthropic, mock_zai, keys, kind, stream):
    shim = make_shim()
    for model, lane, decision in CASES:
        token = f"OK_{model.split('-')[1].upper()}"
        res = probe(kind, shim.url, model, f"Reply with exactly: {token} and nothing else.",
                    stream=stream, api_key=keys["CLIENT_API_KEY"])
        assert res.ok, res.row()
        assert res.text == token
        rec = shim.record_for(res.rid)
        assert (rec["lane"], rec["decision"], rec["model"]) == (lane, decision, model)
        assert rec["op"] == ("stream" if stream else "nonstream")
        assert rec["status"] == rec["upstream_status"] == 200
        assert rec["in_tokens"] and rec["out_tokens"]
        if stream:
            assert rec["sse"]["complete"] is True and rec["sse"]["events"] >= 7
    zai_models = [c.json["model"] for c in mock_zai.calls]
    anth_models = [c.json["model"] for c in mock_anthropic.calls]
    assert zai_models == [m for m, lane, _ in CASES if lane == "zai"]
    assert anth_models == [m for m, lane, _ in CASES if lane == "anthropic"]
    assert all(c.path == "/api/anthropic/v1/messages" for c in mock_zai.calls)


def test_query_string_and_alias_path_pass_through(make_shim, mock_anthropic, mock_zai, keys):
    shim = make_shim()
    res = probe("http", shim.url, "claude-sonnet-4-5", stream=True, api_key=keys["CLIENT_API_KEY"])
    assert res.ok
    [call] = mock_anthropic.wait_for_calls(1)
    assert call.query == {"beta": "true"}
    import httpx
    r = httpx.post(f"{shim.url}/v1/message", json={"model": "claude-haiku-4-5", "max_tokens": 5,
                                                    "messages": [{"role": "user", "content": "hi"}]},
                   headers={"x-api-key": keys["CLIENT_API_KEY"]}, trust_env=False)
    assert r.status_code == 200
    assert shim.record_for(r.headers["x-ccp-request-id"])["path"] == "/v1/message"
    assert mock_zai.wait_for_calls(1)[0].path == "/api/anthropic/v1/messages"


def test_head_root_and_healthz_answer(make_shim):
    import httpx
    shim = make_shim()
    with httpx.Client(trust_env=False) as client:
        assert client.head(f"{shim.url}/").status_code == 200
        health = client.get(f"{shim.url}/healthz")
        assert health.status_code == 200 and health.json()["ok"] is True
        assert health.headers["x-ccp-request-id"]
        ready = client.get(f"{shim.url}/readyz")
        assert ready.status_code == 200, ready.text
        assert set(ready.json()["providers"]) == {"anthropic", "zai"}
