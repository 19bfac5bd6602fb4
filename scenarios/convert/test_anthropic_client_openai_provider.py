"""An Anthropic client (the official SDK) talking to an OpenAI-protocol provider through the shim.

Every answer is parsed by the SDK's own types and stream parser; the mock records what the provider
received, which must be a clean Chat Completions request with only the provider's key.
"""
import json

import anthropic
import httpx
import pytest

from scenarios.convert.conftest import GLM_KEY

pytestmark = [pytest.mark.repro_go, pytest.mark.sse]

TOOLS = [{"name": "get_weather", "description": "Weather for a city",
          "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}},
         {"name": "get_time", "description": "Time in a city",
          "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]


def _client(shim, keys):
    return anthropic.Anthropic(base_url=shim.url, api_key=keys["CLIENT_API_KEY"], max_retries=0,
                               timeout=30)


def test_text_nonstream_and_stream(glm_shim, mock_zai, keys):
    client = _client(glm_shim, keys)
    msg = client.messages.create(model="glm-4.6", max_tokens=64, system="Be brief.",
                                 messages=[{"role": "user", "content": "Reply with exactly: GLM_OK and nothing else."}])
    assert msg.content[0].text == "GLM_OK" and msg.stop_reason == "end_turn" and msg.usage.output_tokens >= 1
    with client.messages.stream(model="glm-4.6", max_tokens=64, messages=[
            {"role": "user", "content": "Generate 30 lines of numbered text"}]) as stream:
        final = stream.get_final_message()
    assert final.content[0].text.count("\n") == 29 and final.stop_reason == "end_turn"
    client.close()
    first, second = mock_zai.calls
    assert first.protocol == "openai" and first.path == "/api/paas/v4/chat/completions"
    assert first.json["model"] == "glm-4.6-chat"
    assert first.json["messages"][0] == {"role": "system", "content": "Be brief."}
    assert second.json["stream"] is True and second.json["stream_options"] == {"include_usage": True}
    for call in (first, second):
        assert call.headers["authorization"] == f"Bearer {GLM_KEY}"
        assert "x-api-key" not in call.headers and "anthropic-version" not in call.headers
        assert keys["CLIENT_API_KEY"] not in json.dumps(call.headers)
    recs = glm_shim.wait_for_records(2)
    for rec in recs:
        assert (rec["lane"], rec["decision"], rec["protocol_in"], rec["protocol_out"]) == (
            "glm", "route", "anthropic", "openai")
        assert rec["upstream_model"] == "glm-4.6-chat" and rec["out_tokens"]
    assert recs[1]["sse"]["complete"] and recs[1]["reason"] == "streaming"


def test_parallel_tool_calls_stream_with_full_arguments(glm_shim, mock_zai, keys):
    client = _client(glm_shim, keys)
    prompt = ('Call tool get_weather with {"city": "Paris", "units": "metric"} '
              'and also call tool get_time with {"city": "Tokyo"}')
    with client.messages.stream(model="glm-4.6", max_tokens=256, tools=TOOLS,
                                tool_choice={"type": "auto", "disable_parallel_tool_use": False},
                                messages=[{"role": "user", "content": prompt}]) as stream:
        final = stream.get_final_message()
    uses = [b for b in final.content if b.type == "tool_use"]
    assert [(u.name, u.input) for u in uses] == [("get_weather", {"city": "Paris", "units": "metric"}),
                                                 ("get_time", {"city": "Tokyo"})]
    assert final.stop_reason == "tool_use"
    sent = mock_zai.calls[0].json
    assert sent["tools"][0]["function"]["name"] == "get_weather" and sent["tool_choice"] == "auto"
    # the round trip: tool results go back as `tool` messages, the answer comes back as text
    followup = client.messages.create(model="glm-4.6", max_tokens=64, tools=TOOLS, messages=[
        {"role": "user", "content": prompt},
        {"role": "assistant", "content": [u.model_dump() for u in uses]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": uses[0].id, "content": "18C"},
                                     {"type": "tool_result", "tool_use_id": uses[1].id, "content": "09:00"}]}])
    assert followup.content[0].text.startswith("tool said:")
    tool_msgs = [m for m in mock_zai.calls[1].json["messages"] if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in tool_msgs] == [uses[0].id, uses[1].id]
    client.close()


def test_thinking_comes_back_as_a_thinking_block(glm_shim, mock_zai, keys):
    client = _client(glm_shim, keys)
    with client.messages.stream(model="glm-4.6", max_tokens=4096, thinking={"type": "enabled", "budget_tokens": 2048},
                                messages=[{"role": "user", "content": "Reply with exactly: T and nothing else."}]) as s:
        final = s.get_final_message()
    assert [b.type for b in final.content] == ["thinking", "text"]
    assert final.content[0].thinking == "Thinking about it." and final.content[1].text == "T"
    assert mock_zai.calls[0].json["reasoning_effort"] == "low"
    client.close()


@pytest.mark.parametrize("status, exc", [(400, anthropic.BadRequestError), (401, anthropic.AuthenticationError),
                                         (429, anthropic.RateLimitError), (500, anthropic.InternalServerError)])
def test_errors_become_anthropic_errors(glm_shim, mock_zai, keys, status, exc):
    mock_zai.set_default(f"status={status}")
    client = _client(glm_shim, keys)
    for stream in (False, True):
        with pytest.raises(exc) as info:
            client.messages.create(model="glm-4.6", max_tokens=8, stream=stream,
                                   messages=[{"role": "user", "content": "x"}])
        assert info.value.status_code == status
        assert info.value.body["type"] == "error"
    client.close()
    recs = glm_shim.wait_for_records(2)
    assert {r["err_type"] for r in recs} == {"upstream_5xx" if status >= 500 else "upstream_4xx"}


def test_mid_stream_failure_ends_with_an_error_event(glm_shim, mock_zai, keys):
    body = {"model": "glm-4.6", "max_tokens": 64, "stream": True,
            "messages": [{"role": "user", "content": "Generate 20 lines of numbered text"}]}
    # (an OpenAI provider gets a fresh header set, so the fault is scripted on the mock instead)
    mock_zai.script("reset_mid_stream;after=4")
    r = httpx.post(f"{glm_shim.url}/v1/messages", json=body, trust_env=False, timeout=30,
                   headers={"x-api-key": keys["CLIENT_API_KEY"], "x-mock-fault": "ignored-by-design"})
    events = [line[7:] for line in r.text.splitlines() if line.startswith("event: ")]
    assert events[0] == "message_start" and events[-1] == "error"
    assert events.count("content_block_start") == events.count("content_block_stop")  # nothing left open
    rec = glm_shim.record_for(r.headers["x-ccp-request-id"])
    assert rec["err_type"] == "net" and rec["sse"]["complete"] is False


def test_count_tokens_is_estimated_for_openai_and_passed_through_for_anthropic(glm_shim, mock_anthropic, keys):
    body = {"model": "glm-4.6", "messages": [{"role": "user", "content": "hello " * 100}]}
    headers = {"x-api-key": keys["CLIENT_API_KEY"]}
    est = httpx.post(f"{glm_shim.url}/v1/messages/count_tokens", json=body, headers=headers, trust_env=False)
    assert est.status_code == 200 and est.headers["x-ccp-estimate"] == "true"
    assert 100 <= est.json()["input_tokens"] < 1000
    real = httpx.post(f"{glm_shim.url}/v1/messages/count_tokens", json={**body, "model": "claude-sonnet-4-5"},
                      headers=headers, trust_env=False)
    assert real.status_code == 200 and real.json()["input_tokens"] > 1000  # the mock's own count
    [call] = mock_anthropic.calls
    assert call.path == "/v1/messages/count_tokens"
    recs = glm_shim.wait_for_records(2)
    assert [r["op"] for r in recs] == ["count_tokens", "count_tokens"]
    assert recs[0]["reason"] == "local_estimate"


def test_readyz_lists_catalog_providers(glm_shim):
    report = httpx.get(f"{glm_shim.url}/readyz", trust_env=False).json()
    assert set(report["providers"]) == {"anthropic", "zai", "glm"}
    assert report["providers"]["glm"]["required"] is False and report["ok"] is True
    assert report["license"]["ok"] is True
