"""An OpenAI client (the official `openai` SDK) on `/v1/chat/completions`: passthrough to an OpenAI
provider, converted for the Anthropic lanes."""
import httpx
import openai
import pytest

from scenarios.convert.conftest import GLM_KEY

pytestmark = [pytest.mark.repro_go]


def _client(shim):
    return openai.OpenAI(base_url=f"{shim.url}/v1", api_key="client-openai-key-123", max_retries=0,
                         timeout=30, http_client=httpx.Client(trust_env=False))


def test_openai_provider_is_a_byte_exact_passthrough(glm_shim, mock_zai):
    body = {"model": "glm-4.6", "stream": True, "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": "Reply with exactly: PASS_OK and nothing else."}]}
    r = httpx.post(f"{glm_shim.url}/v1/chat/completions", json=body, trust_env=False, timeout=30,
                   headers={"authorization": "Bearer client-openai-key-123"})
    assert r.status_code == 200
    [call] = mock_zai.calls
    assert r.content == call.sent  # same protocol on both sides: the same bytes
    assert call.json["model"] == "glm-4.6-chat" and call.headers["authorization"] == f"Bearer {GLM_KEY}"
    rec = glm_shim.record_for(r.headers["x-ccp-request-id"])
    assert (rec["protocol_in"], rec["protocol_out"], rec["lane"], rec["rewrites"]) == (
        "openai", "openai", "glm", ["model"])
    assert rec["sse"]["complete"] is True and rec["reason"] == "streaming"


@pytest.mark.parametrize("model, lane", [("claude-sonnet-4-5", "anthropic"), ("claude-haiku-4-5", "zai")])
def test_anthropic_lanes_are_converted_for_openai_clients(glm_shim, mock_anthropic, mock_zai, keys, model, lane):
    client = _client(glm_shim)
    done = client.chat.completions.create(model=model, messages=[
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Reply with exactly: OAI_OK and nothing else."}])
    assert done.choices[0].message.content == "OAI_OK" and done.choices[0].finish_reason == "stop"
    assert done.usage.completion_tokens >= 1
    chunks = list(client.chat.completions.create(model=model, stream=True, stream_options={"include_usage": True},
                                                 messages=[{"role": "user", "content": "Generate 5 lines of numbered text"}]))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.count("\n") == 4 and chunks[-1].usage.completion_tokens >= 5
    client.close()
    mock = mock_anthropic if lane == "anthropic" else mock_zai
    first, second = mock.calls
    assert first.protocol == "anthropic" and first.json["system"] == "Be brief."
    assert first.json["max_tokens"] > 0 and second.json["stream"] is True
    recs = glm_shim.wait_for_records(2)
    assert {(r["protocol_in"], r["protocol_out"], r["lane"]) for r in recs} == {("openai", "anthropic", lane)}
    assert recs[1]["sse"]["complete"] is True


def test_errors_reach_openai_clients_in_their_shape(glm_shim, mock_anthropic):
    mock_anthropic.set_default("status=429")
    client = _client(glm_shim)
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="claude-sonnet-4-5", messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 429 and info.value.body["message"]
    bad = httpx.post(f"{glm_shim.url}/v1/chat/completions", content=b"{", trust_env=False,
                     headers={"content-type": "application/json"})
    assert bad.status_code == 400 and bad.json()["error"]["message"]
    client.close()


def test_an_openai_passthrough_stream_short_of_done_ends_with_an_error_chunk(glm_shim, mock_zai):
    # the OpenAI side's last event is `data: [DONE]`; without it the client is told, in its shape
    body = {"model": "glm-4.6", "stream": True,
            "messages": [{"role": "user", "content": "Reply with exactly: PASS_OK and nothing else."}]}
    mock_zai.script("no_stop", times=2)  # (a provider gets none of the client's headers)
    r = httpx.post(f"{glm_shim.url}/v1/chat/completions", json=body, trust_env=False, timeout=30,
                   headers={"authorization": "Bearer client-openai-key-123"})
    [call] = mock_zai.calls
    assert call.finished and b"[DONE]" not in call.sent
    assert r.status_code == 200 and r.content.startswith(call.sent)
    tail = r.content[len(call.sent):]
    assert tail.startswith(b"data: {\"error\":") and b"[DONE]" not in tail
    with _client(glm_shim) as client, pytest.raises(openai.APIError):  # raised, not a quiet end
        list(client.chat.completions.create(model="glm-4.6", stream=True, messages=body["messages"]))
    recs = glm_shim.wait_for_records(2)
    assert {(r["err_type"], r["reason"]) for r in recs} == {("net", "stream_incomplete")}
