"""The mock upstream speaking OpenAI Chat Completions, driven by the real `openai` SDK."""
import json

import httpx
import openai
import pytest

from harness.mock_openai import REASONING
from harness.mock_openai_wire import (
    ToolCall,
    chat_chunks,
    chat_completion_json,
    completion_tokens,
)
from harness.mock_upstream import MockUpstream

pytestmark = pytest.mark.quick

MODEL = "glm-4.6"
ECHO = "Reply with exactly: GLM_OK and nothing else."
TOOLS = [{"type": "function", "function": {"name": name, "parameters": {"type": "object"}}}
         for name in ("get_weather", "get_time")]
TWO_CALLS = ('Call tool get_weather with {"city": "Paris"} and also call tool get_time with '
             '{"tz": "Europe/Paris"}')
CALLS = [ToolCall("get_weather", {"city": "Paris"}), ToolCall("get_time", {"tz": "Europe/Paris"})]


@pytest.fixture(scope="module")
def server():
    with MockUpstream("glm") as mock:
        yield mock


@pytest.fixture
def mock(server):
    server.reset()
    yield server
    server.reset()


@pytest.fixture
def http():
    with httpx.Client(trust_env=False, timeout=5) as client:
        yield client


def _sdk(http, base_url):
    return openai.OpenAI(base_url=base_url, api_key="k", max_retries=0, timeout=5, http_client=http)


@pytest.fixture
def sdk(mock, http):
    with _sdk(http, mock.base_url + "/v1") as client:
        yield client


def _user(text):
    return [{"role": "user", "content": text}]


def _tokens(call):
    return max(1, len(call.body) // 4)


def test_non_stream_reply_and_record(mock, sdk):
    reply = sdk.chat.completions.create(model=MODEL, messages=_user(ECHO))
    assert reply.choices[0].message.content == "GLM_OK" and reply.choices[0].finish_reason == "stop"
    [call] = mock.wait_for_calls(1)
    assert (call.method, call.path, call.protocol, call.status, call.finished) == \
        ("POST", "/v1/chat/completions", "openai", 200, True)
    assert call.headers["authorization"] == "Bearer k" and call.json["model"] == MODEL
    assert json.loads(call.sent) == chat_completion_json(MODEL, "GLM_OK", _tokens(call), 1)
    assert reply.usage.prompt_tokens == _tokens(call) and reply.id.startswith("chatcmpl-mock-")
    mock.assert_no_unexpected()


def test_text_parts_and_default_greeting(mock, sdk):
    parts = [{"role": "user", "content": [{"type": "text", "text": "x"}, {"type": "text", "text": ECHO}]}]
    assert sdk.chat.completions.create(model=MODEL, messages=parts).choices[0].message.content == "GLM_OK"
    assert sdk.chat.completions.create(model=MODEL, messages=_user("hi")).choices[0].message.content == \
        "Hello from mock glm"


@pytest.mark.parametrize("prefix", ["", "/api/paas/v4"])
def test_other_base_paths(mock, http, prefix):
    with _sdk(http, mock.base_url + prefix) as client:
        reply = client.chat.completions.create(model=MODEL, messages=_user(ECHO))
    assert reply.choices[0].message.content == "GLM_OK"
    [call] = mock.wait_for_calls(1)
    assert call.path == f"{prefix}/chat/completions" and call.protocol == "openai"


def test_stream_with_usage_is_byte_exact(mock, sdk):
    with sdk.chat.completions.with_streaming_response.create(
            model=MODEL, messages=_user(ECHO), stream=True, stream_options={"include_usage": True},
            extra_headers={"x-mock-deltas": "3"}) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        raw = b"".join(resp.iter_bytes())
    [call] = mock.wait_for_calls(1)
    expected = chat_chunks(MODEL, "GLM_OK", 3, _tokens(call), include_usage=True)
    assert raw == b"".join(expected) == call.sent
    assert call.writes == len(expected) and call.finished and call.protocol == "openai"


def test_stream_parsed_by_the_sdk(mock, sdk):
    stream = sdk.chat.completions.create(model=MODEL, messages=_user("Generate 3 lines of numbered text"),
                                         stream=True, stream_options={"include_usage": True})
    with stream:
        chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.splitlines() == [f"{i}. This is line number {i} of the numbered text." for i in (1, 2, 3)]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == completion_tokens(text, 30)
    assert all(c.usage is None for c in chunks[:-1])


def test_stream_without_usage(mock, sdk):
    stream = sdk.chat.completions.create(model=MODEL, messages=_user(ECHO), stream=True)
    with stream:
        chunks = list(stream)
    assert all(c.choices and c.usage is None for c in chunks)
    [call] = mock.wait_for_calls(1)
    assert call.sent == b"".join(chat_chunks(MODEL, "GLM_OK", 1, _tokens(call), include_usage=False))


def test_parallel_tool_calls_non_stream(mock, sdk):
    reply = sdk.chat.completions.create(model=MODEL, messages=_user(TWO_CALLS), tools=TOOLS)
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    assert [(c.function.name, json.loads(c.function.arguments)) for c in choice.message.tool_calls] == \
        [("get_weather", {"city": "Paris"}), ("get_time", {"tz": "Europe/Paris"})]
    assert len({c.id for c in choice.message.tool_calls}) == 2


def test_parallel_tool_calls_stream_reassemble(mock, sdk):
    stream = sdk.chat.completions.create(model=MODEL, messages=_user(TWO_CALLS), tools=TOOLS,
                                         stream=True, stream_options={"include_usage": True})
    calls: dict[int, dict] = {}
    order, finish = [], None
    with stream:
        for chunk in stream:
            for frag in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
                entry = calls.setdefault(frag.index, {"id": None, "name": None, "arguments": ""})
                entry["id"] = entry["id"] or frag.id
                entry["name"] = entry["name"] or frag.function.name
                if frag.function.arguments:
                    entry["arguments"] += frag.function.arguments
                    order.append(frag.index)
            finish = chunk.choices[0].finish_reason if chunk.choices else finish
    assert finish == "tool_calls" and order == [0, 1, 0, 1, 0, 1]
    assert [(c["name"], json.loads(c["arguments"])) for c in calls.values()] == \
        [("get_weather", {"city": "Paris"}), ("get_time", {"tz": "Europe/Paris"})]
    [call] = mock.wait_for_calls(1)
    assert call.sent == b"".join(chat_chunks(MODEL, "", 1, _tokens(call), True, tool_calls=CALLS))


def test_no_tools_means_no_tool_calls_and_tool_results_echo(mock, sdk):
    plain = sdk.chat.completions.create(model=MODEL, messages=_user(TWO_CALLS))
    assert plain.choices[0].message.tool_calls is None and plain.choices[0].finish_reason == "stop"
    messages = [*_user(TWO_CALLS),
                {"role": "assistant", "content": None, "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21C"}]
    reply = sdk.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS)
    assert reply.choices[0].message.content == "tool said: sunny, 21C"


def test_reasoning(mock, sdk):
    reply = sdk.chat.completions.create(model=MODEL, messages=_user(ECHO), reasoning_effort="low")
    assert reply.choices[0].message.reasoning_content == REASONING
    stream = sdk.chat.completions.create(model=MODEL, messages=_user(ECHO), reasoning_effort="low", stream=True)
    with stream:
        deltas = [c.choices[0].delta for c in stream]
    reasoning = [getattr(d, "reasoning_content", None) for d in deltas]
    assert "".join(r or "" for r in reasoning) == REASONING
    first_content = next(i for i, d in enumerate(deltas) if d.content)
    assert max(i for i, r in enumerate(reasoning) if r) < first_content


@pytest.mark.parametrize("status,exc,etype", [
    (400, openai.BadRequestError, "invalid_request_error"),
    (401, openai.AuthenticationError, "authentication_error"),
    (403, openai.PermissionDeniedError, "permission_error"),
    (404, openai.NotFoundError, "not_found_error"),
    (429, openai.RateLimitError, "rate_limit_error"),
    (500, openai.InternalServerError, "server_error"),
    (503, openai.InternalServerError, "server_error"),
])
def test_error_statuses(mock, sdk, status, exc, etype):
    with pytest.raises(exc) as info:
        sdk.chat.completions.create(model=MODEL, messages=_user("hi"), stream=True,
                                    extra_headers={"x-mock-fault": f"status={status}"})
    assert info.value.status_code == status
    assert info.value.body == {"message": "mock fault", "type": etype, "param": None, "code": None}
    assert (info.value.response.headers.get("retry-after") == "1") == (status == 429)
    [call] = mock.wait_for_calls(1)
    assert call.fault == f"status={status}" and call.protocol == "openai"


def test_scripted_fault_text_and_default(mock, sdk):
    mock.script("status=529")
    mock.script(text="scripted")
    with pytest.raises(openai.InternalServerError):
        sdk.chat.completions.create(model=MODEL, messages=_user("hi"))
    assert sdk.chat.completions.create(model=MODEL, messages=_user("hi")).choices[0].message.content == "scripted"
    mock.set_default("status=429")
    with pytest.raises(openai.RateLimitError):
        sdk.chat.completions.create(model=MODEL, messages=_user("hi"))


def test_bad_fault_header_and_body(mock, http):
    url = f"{mock.base_url}/v1/chat/completions"
    bad = http.post(url, json={"model": MODEL, "messages": []}, headers={"x-mock-fault": "boom"})
    assert bad.status_code == 400 and bad.json()["error"]["type"] == "invalid_request_error"
    assert http.post(url, content=b"[]").json()["error"]["message"] == "body must be a JSON object"


def test_reset_before_headers(mock, sdk):
    with pytest.raises(openai.APIConnectionError):
        sdk.chat.completions.create(model=MODEL, messages=_user("hi"),
                                    extra_headers={"x-mock-fault": "reset_before_headers"})
    [call] = mock.wait_for_calls(1)
    assert call.sent == b"" and not call.finished


def _post_stream(http, mock, fault, prompt=ECHO):
    body = json.dumps({"model": MODEL, "stream": True, "messages": _user(prompt)}).encode()
    return body, http.stream("POST", f"{mock.base_url}/v1/chat/completions", content=body,
                             headers={"x-mock-fault": fault})


def test_reset_mid_stream_after_two_chunks(mock, http):
    body, ctx = _post_stream(http, mock, "reset_mid_stream;after=2")
    got = b""
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        with ctx as resp:
            for chunk in resp.iter_raw():
                got += chunk
    assert got == b"".join(chat_chunks(MODEL, "GLM_OK", 1, len(body) // 4, False)[:2])
    [call] = mock.wait_until(lambda: mock.calls[0].sent == got)
    assert not call.finished


def test_malformed_event_breaks_one_chunk(mock, http):
    _, ctx = _post_stream(http, mock, "malformed_event")
    with ctx as resp:
        raw = b"".join(resp.iter_raw())
    blocks = [b for b in raw.decode().split("\n\n") if b]
    bad = []
    for i, block in enumerate(blocks[:-1]):
        try:
            json.loads(block.removeprefix("data: "))
        except ValueError:
            bad.append(i)
    assert bad == [1] and blocks[-1] == "data: [DONE]"


def test_slow_drip_keeps_the_bytes(mock, http):
    body, ctx = _post_stream(http, mock, "slow_drip;delay_ms=5")
    with ctx as resp:
        raw = b"".join(resp.iter_raw())
    expected = chat_chunks(MODEL, "GLM_OK", 1, len(body) // 4, False)
    assert raw == b"".join(expected)
    [call] = mock.wait_for_calls(1)
    assert call.writes == len(expected) and call.fault == "slow_drip;delay_ms=5"


def test_stall_ends_when_the_client_leaves(mock, http):
    _, ctx = _post_stream(http, mock, "stall;seconds=30")
    with ctx as resp:
        first = next(resp.iter_raw())
        assert first.startswith(b"data: ") and b'"role":"assistant"' in first
    [call] = mock.wait_until(lambda: mock.calls[0].client_disconnected, timeout=3)
    assert not call.finished


def test_same_instance_still_speaks_anthropic(mock, http):
    resp = http.post(f"{mock.base_url}/v1/messages", headers={"x-mock-fault": "status=429"},
                     json={"model": MODEL, "max_tokens": 8, "messages": _user("hi")})
    assert resp.json() == {"type": "error", "error": {"type": "rate_limit_error", "message": "mock fault"}}
    listed = http.get(f"{mock.base_url}/_mock/calls").json()
    assert [c["protocol"] for c in listed] == ["anthropic"]
