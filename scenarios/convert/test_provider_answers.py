"""Provider answers that are not the usual 200 stream, through the real shim, read by the official SDK.

- OpenAI's reasoning models answer a request they cannot finish within `max_tokens` (Claude Code's
  `max_tokens: 1` availability probe, sub2api#6838) with a 400 "Could not finish the message because
  max_tokens or model output limit was reached…"; Anthropic answers 200 with `stop_reason:
  "max_tokens"`, stream or not, and so must the shim. Any other 400 stays a 400.
- A provider (or a gateway before it) that answers a streaming request with one JSON body: the client
  asked for a stream and gets a valid Anthropic SSE stream of the same message.
"""
import anthropic
import httpx
import pytest

pytestmark = [pytest.mark.repro_go, pytest.mark.sse]

MAX_TOKENS_400 = {"error": {
    "message": "Could not finish the message because max_tokens or model output limit was reached. "
               "Please try again with higher max_tokens.",
    "type": "invalid_request_error", "param": None, "code": None}}


def _client(shim, keys):
    return anthropic.Anthropic(base_url=shim.url, api_key=keys["CLIENT_API_KEY"], max_retries=0, timeout=30)


def test_max_tokens_400_becomes_a_max_tokens_answer(glm_shim, mock_zai, keys):
    mock_zai.set_responder(lambda payload: (400, MAX_TOKENS_400))
    client = _client(glm_shim, keys)
    body = dict(model="glm-4.6", max_tokens=1, messages=[{"role": "user", "content": "quota"}])
    message = client.messages.create(**body)
    assert (message.stop_reason, message.content, message.usage.output_tokens) == ("max_tokens", [], 0)
    with client.messages.stream(**body) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "max_tokens" and final.content == [] and final.id != message.id
    client.close()
    assert [c.json["max_tokens"] for c in mock_zai.calls] == [1, 1]  # the provider was asked, twice
    recs = glm_shim.wait_for_records(2)
    for rec in recs:
        assert (rec["status"], rec["upstream_status"], rec["err_type"], rec["reason"]) == (
            200, 400, None, "max_tokens_reached")
    assert [r["op"] for r in recs] == ["nonstream", "stream"] and recs[1]["sse"]["complete"]


def test_an_unrelated_400_stays_a_400(glm_shim, mock_zai, keys):
    mock_zai.set_responder(lambda payload: (400, {"error": {
        "message": "Invalid max_tokens value, the valid range of max_tokens is [1, 8192]",
        "type": "invalid_request_error"}}))
    client = _client(glm_shim, keys)
    for stream in (False, True):
        with pytest.raises(anthropic.BadRequestError) as info:
            client.messages.create(model="glm-4.6", max_tokens=32000, stream=stream,
                                   messages=[{"role": "user", "content": "x"}])
        assert "valid range of max_tokens" in info.value.body["error"]["message"]
    client.close()
    assert {r["err_type"] for r in glm_shim.wait_for_records(2)} == {"upstream_4xx"}


def test_json_answer_to_a_streaming_request_is_sent_as_a_stream(glm_shim, mock_zai, keys):
    mock_zai.set_responder(lambda payload: {
        "id": "chatcmpl-json", "object": "chat.completion", "created": 1, "model": payload["model"],
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": "Writing it.",
            "tool_calls": [{"id": "call_9", "type": "function",
                            "function": {"name": "Write", "arguments": '{"file_path":"a.txt","content":"é"}'}}]}}],
        "usage": {"prompt_tokens": 40, "completion_tokens": 9, "prompt_tokens_details": {"cached_tokens": 30}}})
    client = _client(glm_shim, keys)
    with client.messages.stream(model="glm-4.6", max_tokens=64, tools=[
            {"name": "Write", "input_schema": {"type": "object"}}],
            messages=[{"role": "user", "content": "write"}]) as stream:
        final = stream.get_final_message()
    client.close()
    assert [b.type for b in final.content] == ["text", "tool_use"]
    assert final.content[1].input == {"file_path": "a.txt", "content": "é"} and final.content[1].id == "call_9"
    assert (final.stop_reason, final.usage.input_tokens, final.usage.cache_read_input_tokens,
            final.usage.output_tokens) == ("tool_use", 10, 30, 9)
    [call] = mock_zai.calls
    assert call.json["stream"] is True  # the provider was asked for a stream and answered JSON
    [rec] = glm_shim.wait_for_records(1)
    assert rec["op"] == "stream" and rec["sse"]["complete"] and rec["status"] == 200
    assert (rec["in_tokens"], rec["cache_read_tokens"], rec["out_tokens"]) == (10, 30, 9)


def test_raw_sse_reaches_a_plain_http_client(glm_shim, mock_zai, keys):
    mock_zai.set_responder(lambda payload: (400, MAX_TOKENS_400))
    r = httpx.post(f"{glm_shim.url}/v1/messages", trust_env=False, timeout=30,
                   headers={"x-api-key": keys["CLIENT_API_KEY"]},
                   json={"model": "glm-4.6", "max_tokens": 1, "stream": True,
                         "messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = [line[7:] for line in r.text.splitlines() if line.startswith("event: ")]
    assert events == ["message_start", "ping", "message_delta", "message_stop"]
