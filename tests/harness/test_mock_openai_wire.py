"""The OpenAI Chat Completions wire builders, reply rules and the protocol-aware fault helpers."""
import json

import pytest

from harness.mock_faults import Fault, error_body, stream_plan
from harness.mock_openai import REASONING, reply_parts, tool_calls_in
from harness.mock_openai_wire import (
    DONE,
    ToolCall,
    chat_chunks,
    chat_completion_id,
    chat_completion_json,
    completion_tokens,
    tool_call_id,
)
from harness.mock_wire import prompt_reply, reply_text

pytestmark = pytest.mark.quick

MODEL = "glm-4.6"
CALLS = [ToolCall("get_weather", {"city": "Paris"}), ToolCall("get_time", {"tz": "Europe/Paris"})]


def _data(chunks: list[bytes]) -> list[dict]:
    assert chunks[-1] == DONE
    out = []
    for chunk in chunks[:-1]:
        assert chunk.startswith(b"data: {") and chunk.endswith(b"}\n\n") and chunk.count(b"\n") == 2
        out.append(json.loads(chunk[len(b"data: "):]))
    return out


def _deltas(chunks: list[bytes]) -> list[dict]:
    return [d["choices"][0]["delta"] for d in _data(chunks) if d["choices"]]


def test_completion_json_text():
    reply = chat_completion_json(MODEL, "OK", 10, 1)
    assert reply == {
        "id": chat_completion_id(MODEL, "OK", 10), "object": "chat.completion", "created": 1_700_000_000,
        "model": MODEL,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "OK"}, "logprobs": None,
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 1, "total_tokens": 11}}
    assert reply["id"].startswith("chatcmpl-mock-")
    assert chat_completion_json(MODEL, "OK", 10, 1, msg_id="chatcmpl-x")["id"] == "chatcmpl-x"


def test_completion_json_tools_and_reasoning():
    reply = chat_completion_json(MODEL, "", 10, 7, tool_calls=CALLS, reasoning=REASONING)
    choice = reply["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    message = choice["message"]
    assert message["content"] is None and message["reasoning_content"] == REASONING
    assert [(c["id"], c["type"], c["function"]["name"], json.loads(c["function"]["arguments"]))
            for c in message["tool_calls"]] == [
        (tool_call_id(reply["id"], 0), "function", "get_weather", {"city": "Paris"}),
        (tool_call_id(reply["id"], 1), "function", "get_time", {"tz": "Europe/Paris"})]
    assert ToolCall("f", '{"raw": 1}').arguments_json() == '{"raw": 1}'  # a string is sent as is


def test_chunks_text_grammar():
    chunks = chat_chunks(MODEL, "Hello from mock glm", 4, 9, include_usage=False)
    data = _data(chunks)
    assert all(d["id"] == data[0]["id"] and d["object"] == "chat.completion.chunk" and "usage" not in d
               for d in data)
    assert _deltas(chunks) == [{"role": "assistant", "content": ""}, {"content": "Hello"},
                               {"content": " from"}, {"content": " mock"}, {"content": " glm"}, {}]
    assert [d["choices"][0]["finish_reason"] for d in data] == [None] * 5 + ["stop"]
    assert chunks == chat_chunks(MODEL, "Hello from mock glm", 4, 9, include_usage=False)  # deterministic
    assert chat_chunks(MODEL, "other", 1, 9, False)[0] != chunks[0]  # the id follows the inputs


def test_chunks_usage_is_the_last_chunk():
    chunks = chat_chunks(MODEL, "a b", 2, 9, include_usage=True, reasoning=REASONING)
    data = _data(chunks)
    assert [d["usage"] for d in data[:-1]] == [None] * (len(data) - 1)
    assert data[-1]["choices"] == []
    assert data[-1]["usage"] == {"prompt_tokens": 9, "completion_tokens": 5, "total_tokens": 14}
    assert completion_tokens("a b", 2, reasoning=REASONING) == 5
    deltas = _deltas(chunks)
    assert "".join(d.get("reasoning_content", "") for d in deltas) == REASONING
    assert [next(iter(d), None) for d in deltas] == ["role", *["reasoning_content"] * 3,
                                                      "content", "content", None]


def test_parallel_tool_calls_interleave_and_reassemble():
    chunks = chat_chunks(MODEL, "", 1, 9, include_usage=True, tool_calls=CALLS)
    deltas = _deltas(chunks)
    assert deltas[0] == {"role": "assistant", "content": ""} and deltas[-1] == {}
    fragments = [d["tool_calls"] for d in deltas[1:-1]]
    assert all(len(f) == 1 for f in fragments)  # no content deltas for a tool-call-only reply
    msg_id = _data(chunks)[0]["id"]
    assert fragments[0][0] == {"index": 0, "id": tool_call_id(msg_id, 0), "type": "function",
                               "function": {"name": "get_weather", "arguments": ""}}
    assert fragments[1][0]["index"] == 1 and fragments[1][0]["function"]["name"] == "get_time"
    pieces = [f[0] for f in fragments[2:]]
    assert [p["index"] for p in pieces] == [0, 1, 0, 1, 0, 1]  # interleaved
    assert all(set(p) == {"index", "function"} and set(p["function"]) == {"arguments"} for p in pieces)
    args = {i: "".join(p["function"]["arguments"] for p in pieces if p["index"] == i) for i in (0, 1)}
    assert [json.loads(args[0]), json.loads(args[1])] == [{"city": "Paris"}, {"tz": "Europe/Paris"}]
    assert _data(chunks)[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert _data(chunks)[-1]["usage"]["completion_tokens"] == 6 == completion_tokens("", 1, CALLS)


def test_uneven_and_short_arguments():
    calls = [ToolCall("a", {}), ToolCall("b", {"k": "a long value"})]
    pieces = [d["tool_calls"][0] for d in _deltas(chat_chunks(MODEL, "", 1, 9, False, calls))[3:-1]]
    assert [p["index"] for p in pieces] == [0, 1, 0, 1, 1]
    assert "".join(p["function"]["arguments"] for p in pieces if p["index"] == 0) == "{}"


def test_prompt_rules():
    assert prompt_reply("Reply with exactly: X1 and nothing else.") == "X1"
    assert prompt_reply("Generate 2 lines of numbered text") == (
        "1. This is line number 1 of the numbered text.\n2. This is line number 2 of the numbered text.")
    assert prompt_reply("hello") is None
    assert reply_text({"messages": [{"role": "user", "content": "hi"}]}, "glm") == "Hello from mock glm"


def test_tool_calls_in():
    assert tool_calls_in('Call tool get_weather with {"city": "Paris"}.') == [CALLS[0]]
    prompt = ('Please call tool get_weather with {"city": "Paris"} and also call tool get_time with '
              '{"tz": "Europe/Paris"} now')
    assert tool_calls_in(prompt) == CALLS
    assert tool_calls_in("Call tool f with {broken") == []
    assert tool_calls_in("no tools here") == []


TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]


@pytest.mark.parametrize("payload,parts", [
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": "x"},
                                                 {"type": "text", "text": "Reply with exactly: P and nothing else."}]}]},
     ("P", [], None)),
    ({"tools": TOOLS, "messages": [{"role": "user", "content": 'Call tool get_weather with {"city": "Paris"}'}]},
     ("", [CALLS[0]], None)),
    ({"messages": [{"role": "user", "content": 'Call tool get_weather with {"city": "Paris"}'}]},
     ("Hello from mock glm", [], None)),  # no `tools` in the request: no tool calls
    ({"reasoning_effort": "low", "messages": [{"role": "user", "content": "hi"}]},
     ("Hello from mock glm", [], REASONING)),
    ({"tools": TOOLS, "messages": [
        {"role": "user", "content": 'Call tool get_weather with {"city": "Paris"}'},
        {"role": "assistant", "content": None, "tool_calls": []},
        {"role": "tool", "tool_call_id": "call_1", "content": [{"type": "text", "text": "sunny"}]}]},
     ("tool said: sunny", [], None)),
])
def test_reply_parts(payload, parts):
    assert reply_parts(payload, "glm") == parts


@pytest.mark.parametrize("status,etype", [(400, "invalid_request_error"), (401, "authentication_error"),
                                          (403, "permission_error"), (404, "not_found_error"),
                                          (429, "rate_limit_error"), (418, "invalid_request_error"),
                                          (500, "server_error"), (529, "server_error")])
def test_openai_error_body(status, etype):
    assert error_body(status, protocol="openai") == {
        "error": {"message": "mock fault", "type": etype, "param": None, "code": None}}
    assert error_body(status)["type"] == "error"  # Anthropic stays the default
    with pytest.raises(ValueError):
        error_body(status, protocol="grpc")


def test_stream_plan_openai():
    chunks = chat_chunks(MODEL, "caf\u00e9 ok", 2, 9, include_usage=True)
    broken = [e for _, e in stream_plan(chunks, Fault("malformed_event"), "openai")]
    assert broken[1] == chunks[1][:-3] + b"\n\n" and broken[:1] + broken[2:] == chunks[:1] + chunks[2:]
    split = stream_plan(chunks, Fault("split_utf8"), "openai")
    assert len(split) == len(chunks) + 1 and b"".join(e for _, e in split) == b"".join(chunks)
    assert split[2][0] > 0 and split[1][1].endswith(b"\xc3")
    drip = stream_plan(chunks, Fault("slow_drip", delay_ms=7), "openai")
    assert [p for p, _ in drip] == [0.0] + [0.007] * (len(chunks) - 1)
