"""Anthropic Messages SSE in, OpenAI chat.completion.chunk SSE out (proxy.core.convert.streams_openai):
the fixture cases read back by the real OpenAI SDK, and the chunk-by-chunk rules of the converter."""
import json
from pathlib import Path

import httpx2
import openai
import pytest

from proxy.core.convert.streams_openai import AnthropicToOpenAIStream
from tests.proxy.core.convert.frames import sse_events

pytestmark = pytest.mark.quick

CASES_DIR = Path(__file__).resolve().parents[4] / "fixtures" / "conversion"


def _cases():
    cases = [(p.stem, json.loads(p.read_text())) for p in sorted(CASES_DIR.glob("a2o_stream*.json"))]
    return [pytest.param(case, id=stem) for stem, case in cases if case["direction"] == "a2o_stream"]


def _upstream_bytes(case) -> bytes:
    return b"".join(f"event: {item['type']}\ndata: {json.dumps(item)}\n\n".encode() for item in case["input"])


def _convert(case):
    converter = AnthropicToOpenAIStream(case["model"])
    out = converter.feed(_upstream_bytes(case)) + converter.finish(case.get("finish_error"))
    return converter, out




def _sdk_client(body: bytes):
    def handler(request):
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=body)
    http = httpx2.Client(transport=httpx2.MockTransport(handler))
    return openai.OpenAI(base_url="http://shim/v1", api_key="x", http_client=http)


def _assemble_openai(client) -> dict:
    got = {"content": "", "reasoning": "", "tool_calls": {}, "finish_reason": None, "usage": None,
           "id": None, "error": None}
    try:
        for chunk in client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}],
                                                    stream=True):
            got["id"] = chunk.id
            if chunk.usage is not None:
                got["usage"] = chunk.usage.model_dump(
                    include={"prompt_tokens", "completion_tokens", "total_tokens"})
            for choice in chunk.choices:
                delta = choice.delta
                got["content"] += delta.content or ""
                got["reasoning"] += getattr(delta, "reasoning_content", None) or ""
                for call in delta.tool_calls or []:
                    slot = got["tool_calls"].setdefault(call.index, {"id": "", "name": "", "arguments": ""})
                    slot["id"] += call.id or ""
                    slot["name"] += (call.function.name if call.function else None) or ""
                    slot["arguments"] += (call.function.arguments if call.function else None) or ""
                got["finish_reason"] = choice.finish_reason or got["finish_reason"]
    except openai.APIError as error:
        got["error"] = error.message
    got["tool_calls"] = [got["tool_calls"][i] for i in sorted(got["tool_calls"])]
    return got


@pytest.mark.parametrize("case", _cases())
def test_openai_sdk_parses_converted_stream(case):
    converter, out = _convert(case)
    assert out.endswith(b"data: [DONE]\n\n")
    assert all(name is None for name, _ in sse_events(out))
    expected = case["expected"]
    assert converter.complete is expected["complete"]
    with _sdk_client(out) as client:
        got = _assemble_openai(client)
    assert got == {**{"error": None}, **{k: v for k, v in expected.items() if k != "complete"}}
    assert converter.finish() == b""


def test_anthropic_to_openai_usage_is_kept_in_anthropic_terms():
    case = json.loads((CASES_DIR / "a2o_stream_text_thinking_tools.json").read_text())
    converter, _ = _convert(case)
    assert converter.usage == {"input_tokens": 30, "output_tokens": 42, "cache_creation_input_tokens": 0,
                               "cache_read_input_tokens": 10}


def _event(obj: dict) -> bytes:
    return f"event: {obj['type']}\ndata: {json.dumps(obj)}\n\n".encode()


def _chunks(out: bytes) -> list:
    return [data if data == "[DONE]" else json.loads(data) for _, data in sse_events(out)]


START = {"type": "message_start", "message": {"id": "msg_abc", "usage": {"input_tokens": 5}}}


def test_every_chunk_carries_the_completion_id_model_and_created_and_starts_with_the_role():
    converter = AnthropicToOpenAIStream("gpt-4o", created=1700000000)
    [first] = _chunks(converter.feed(_event(START)))
    assert (first["id"], first["object"], first["model"], first["created"]) == \
        ("chatcmpl-abc", "chat.completion.chunk", "gpt-4o", 1700000000)
    assert first["choices"] == [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                 "logprobs": None, "finish_reason": None}]


def test_tool_calls_are_numbered_in_order_of_appearance_whatever_the_block_index():
    converter = AnthropicToOpenAIStream("m")
    out = converter.feed(_event(START))
    for index, name in ((3, "Bash"), (7, "Read")):
        out += converter.feed(_event({"type": "content_block_start", "index": index,
                                      "content_block": {"type": "tool_use", "id": f"toolu_{name}",
                                                        "name": name}}))
        out += converter.feed(_event({"type": "content_block_delta", "index": index,
                                      "delta": {"type": "input_json_delta", "partial_json": "{}"}}))
    out += converter.feed(_event({"type": "content_block_delta", "index": 9,  # no such call
                                  "delta": {"type": "input_json_delta", "partial_json": "zz"}}))
    calls = [c for chunk in _chunks(out)[1:] for c in chunk["choices"][0]["delta"]["tool_calls"]]
    assert [(c["index"], c.get("id"), c["function"].get("name"), c["function"]["arguments"])
            for c in calls] == [(0, "toolu_Bash", "Bash", ""), (0, None, None, "{}"),
                                (1, "toolu_Read", "Read", ""), (1, None, None, "{}")]


def test_text_and_thinking_deltas_become_content_and_reasoning_content_and_empty_ones_nothing():
    converter = AnthropicToOpenAIStream("m")
    converter.feed(_event(START))
    out = b"".join(converter.feed(_event({"type": "content_block_delta", "index": 0, "delta": d}))
                   for d in ({"type": "thinking_delta", "thinking": "hmm"},
                             {"type": "text_delta", "text": "hi"}, {"type": "text_delta", "text": ""},
                             {"type": "signature_delta", "signature": "sig"}))
    assert [c["choices"][0]["delta"] for c in _chunks(out)] == [{"reasoning_content": "hmm"},
                                                                  {"content": "hi"}]


def test_the_end_is_a_finish_reason_then_usage_then_done():
    converter = AnthropicToOpenAIStream("m")
    converter.feed(_event(START))
    converter.feed(_event({"type": "message_delta", "delta": {"stop_reason": "max_tokens"},
                           "usage": {"output_tokens": 4, "cache_read_input_tokens": 2}}))
    *chunks, done = _chunks(converter.feed(_event({"type": "message_stop"})))
    assert done == "[DONE]" and converter.complete and converter.error is None
    assert chunks[0]["choices"][0]["finish_reason"] == "length"
    assert chunks[1]["choices"] == [] and chunks[1]["usage"] == {
        "prompt_tokens": 7, "completion_tokens": 4, "total_tokens": 11,
        "prompt_tokens_details": {"cached_tokens": 2}}
    assert converter.feed(_event({"type": "message_stop"})) == b"" and converter.finish() == b""


def test_a_stop_without_a_message_start_has_no_usage_chunk():
    converter = AnthropicToOpenAIStream("m")
    converter.feed(_event({"type": "message_delta", "delta": {}}))
    *chunks, done = _chunks(converter.feed(_event({"type": "message_stop"})))
    assert done == "[DONE]" and len(chunks) == 1
    assert chunks[0]["choices"][0]["finish_reason"] == "stop"  # no stop_reason: end_turn


def test_an_error_event_keeps_its_type_and_ends_the_stream():
    converter = AnthropicToOpenAIStream("m")
    converter.feed(_event(START))
    out = converter.feed(_event({"type": "error", "error": {"type": "overloaded_error",
                                                            "message": "Overloaded"}}))
    assert _chunks(out) == [{"error": {"message": "Overloaded", "type": "overloaded_error",
                                       "param": None, "code": None}}, "[DONE]"]
    assert (converter.complete, converter.error) == (False, "Overloaded")
    assert converter.finish() == b""


def test_a_stream_cut_before_its_stop_ends_with_an_api_error():
    converter = AnthropicToOpenAIStream("m")
    converter.feed(_event(START))
    out = converter.finish()
    assert _chunks(out)[0]["error"]["type"] == "api_error" and _chunks(out)[-1] == "[DONE]"
    assert not converter.complete and "before the answer was complete" in converter.error
