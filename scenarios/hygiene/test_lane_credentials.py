"""Header hygiene, checked on what the mocks actually received."""
import json

import httpx
import pytest

from harness.hygiene import check_anthropic_calls, check_zai_calls
from harness.probe_kinds import probe

pytestmark = [pytest.mark.hygiene, pytest.mark.repro_go]


@pytest.mark.parametrize("mode", ["x-api-key", "authorization"])
@pytest.mark.parametrize("client_auth", ["api_key", "auth_token"])
def test_zai_header_modes(make_shim, mock_anthropic, mock_zai, keys, mode, client_auth):
    shim = make_shim({"ZAI_HEADER_MODE": mode})
    # (the SDK itself sends an `sk-ant-oat…` value as Bearer, so each style gets its own kind of value)
    client_secret = keys["CLIENT_API_KEY"] if client_auth == "api_key" else keys["CLIENT_OAUTH_TOKEN"]
    cred = {client_auth: client_secret}
    for model in ("claude-haiku-4-5", "claude-sonnet-4-5"):
        for stream in (False, True):
            assert probe("sdk", shim.url, model, stream=stream, **cred).ok
    zai_headers = [c.headers for c in mock_zai.calls]
    anth_headers = [c.headers for c in mock_anthropic.calls]
    assert len(zai_headers) == len(anth_headers) == 2
    result = check_zai_calls(zai_headers, keys["ZAI_API_KEY"],
                             [client_secret, keys["ANTHROPIC_AUTH_TOKEN"]], mode)
    assert result.ok, result.detail
    assert check_anthropic_calls(anth_headers, keys["ZAI_API_KEY"]).ok
    # the anthropic lane carries the client's own credential (this SDK version sends both as Bearer)
    assert all(client_secret in h.get("x-api-key", "") + h.get("authorization", "")
               for h in anth_headers)
    assert all(keys["ANTHROPIC_AUTH_TOKEN"] not in str(h) for h in anth_headers)
    recs = shim.wait_for_records(4)
    assert {r["header_mode"] for r in recs if r["lane"] == "zai"} == {mode}
    assert all("header_mode" not in r for r in recs if r["lane"] == "anthropic")
    # the greps the operators use keep working on the raw lines
    raw = shim.usage_path.read_text()
    assert raw.count('"lane":"anthropic"') == 2 and raw.count('"header_mode":') == 2


def test_client_without_credential_gets_the_shim_token(make_shim, mock_anthropic, mock_zai, keys):
    shim = make_shim()
    assert probe("http", shim.url, "claude-sonnet-4-5").ok
    [call] = mock_anthropic.wait_for_calls(1)
    assert call.headers["authorization"] == f"Bearer {keys['ANTHROPIC_AUTH_TOKEN']}"
    assert "x-api-key" not in call.headers


def test_zai_key_sent_by_a_client_never_reaches_anthropic(make_shim, mock_anthropic, mock_zai, keys):
    shim = make_shim()
    assert probe("http", shim.url, "claude-sonnet-4-5", api_key=keys["ZAI_API_KEY"]).ok
    [call] = mock_anthropic.wait_for_calls(1)
    assert keys["ZAI_API_KEY"] not in json.dumps(call.headers)
    assert call.headers["authorization"] == f"Bearer {keys['ANTHROPIC_AUTH_TOKEN']}"


def test_hop_by_hop_headers_are_dropped_and_anthropic_headers_kept(make_shim, mock_anthropic,
                                                                    mock_zai, keys):
    shim = make_shim()
    body = {"model": "claude-haiku-4-5", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
    headers = {"x-api-key": keys["CLIENT_API_KEY"], "anthropic-version": "2023-06-01",
               "anthropic-beta": "interleaved-thinking-2025-05-14", "connection": "keep-alive, x-hop",
               "x-hop": "1", "proxy-authorization": "Basic abc", "te": "trailers"}
    r = httpx.post(f"{shim.url}/v1/messages", json=body, headers=headers, trust_env=False)
    assert r.status_code == 200
    [call] = mock_zai.wait_for_calls(1)
    assert call.headers["anthropic-beta"] == "interleaved-thinking-2025-05-14"
    assert call.headers["anthropic-version"] == "2023-06-01"
    for gone in ("x-hop", "proxy-authorization", "te"):
        assert gone not in call.headers
    assert call.headers["host"] == f"127.0.0.1:{mock_zai.port}"
    assert int(call.headers["content-length"]) == len(call.body)
