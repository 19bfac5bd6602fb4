"""Whole-response conversion, both directions: fixture cases checked exactly and parsed by the real SDKs."""
import json
from pathlib import Path

import anthropic
import httpx2
import openai
import pytest
from anthropic.types import Message
from openai.types.chat import ChatCompletion

from proxy.core.convert import (
    ConversionError,
    anthropic_to_openai_response,
    openai_to_anthropic_response,
)
from proxy.core.convert.responses import finish_reason, stop_reason
from tests.proxy.core.convert.fresh_ids import MESSAGE_ID, TOOL_ID, settle_fresh_ids

pytestmark = pytest.mark.quick

CASES_DIR = Path(__file__).resolve().parents[4] / "fixtures" / "conversion"


def _cases(direction):
    cases = [(p.stem, json.loads(p.read_text())) for p in sorted(CASES_DIR.glob("*.json"))]
    return [pytest.param(case, id=stem) for stem, case in cases if case["direction"] == direction]


def _client_returning(sdk, body: dict):
    def handler(request):
        return httpx2.Response(200, json=body)
    http = httpx2.Client(transport=httpx2.MockTransport(handler))
    if sdk == "anthropic":
        return anthropic.Anthropic(base_url="http://shim", api_key="x", http_client=http)
    return openai.OpenAI(base_url="http://shim/v1", api_key="x", http_client=http)


@pytest.mark.parametrize("case", _cases("o2a_response"))
def test_openai_to_anthropic_case(case):
    converted = openai_to_anthropic_response(case["input"], case["model"])
    assert settle_fresh_ids(converted, case["expected"]) == case["expected"]
    parsed = Message.model_validate(converted)
    assert [b.type for b in parsed.content] == [b["type"] for b in case["expected"]["content"]]
    assert parsed.stop_reason == case["expected"]["stop_reason"]


@pytest.mark.parametrize("case", _cases("o2a_response"))
def test_anthropic_sdk_reads_converted_response(case):
    converted = openai_to_anthropic_response(case["input"], case["model"])
    with _client_returning("anthropic", converted) as client:
        message = client.messages.create(model="m", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    assert message.model_dump(exclude_none=True, include={"content", "stop_reason", "usage"}) == {
        "content": case["expected"]["content"], "stop_reason": case["expected"]["stop_reason"],
        "usage": case["expected"]["usage"]}


@pytest.mark.parametrize("case", _cases("a2o_response"))
def test_anthropic_to_openai_case(case):
    converted = anthropic_to_openai_response(case["input"], case["model"])
    assert converted == case["expected"]
    ChatCompletion.model_validate(converted)


@pytest.mark.parametrize("case", _cases("a2o_response"))
def test_openai_sdk_reads_converted_response(case):
    converted = anthropic_to_openai_response(case["input"], case["model"])
    with _client_returning("openai", converted) as client:
        completion = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    expected = case["expected"]["choices"][0]
    choice = completion.choices[0]
    assert choice.finish_reason == expected["finish_reason"]
    assert choice.message.content == expected["message"]["content"]
    calls = [(c.id, c.function.name, json.loads(c.function.arguments)) for c in choice.message.tool_calls or []]
    blocks = [(b["id"], b["name"], b["input"]) for b in case["input"]["content"] if b["type"] == "tool_use"]
    assert calls == blocks
    assert completion.usage.total_tokens == case["expected"]["usage"]["total_tokens"]


@pytest.mark.parametrize(("reason", "tools", "expected"), [
    ("stop", False, "end_turn"), ("length", False, "max_tokens"), ("tool_calls", True, "tool_use"),
    ("function_call", True, "tool_use"), ("content_filter", False, "refusal"), (None, False, "end_turn"),
    ("stop", True, "tool_use"), ("something_new", False, "end_turn"),
])
def test_stop_reason(reason, tools, expected):
    assert stop_reason(reason, called_tools=tools) == expected


@pytest.mark.parametrize(("reason", "expected"), [
    ("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"), ("tool_use", "tool_calls"),
    ("refusal", "content_filter"), ("pause_turn", "stop"), (None, "stop"),
])
def test_finish_reason(reason, expected):
    assert finish_reason(reason) == expected


def test_every_answer_gets_a_fresh_message_id():
    body = {"id": "chatcmpl-constant", "choices": [{"index": 0, "finish_reason": "stop",
                                                    "message": {"role": "assistant", "content": "hi"}}]}
    ids = {openai_to_anthropic_response(body, "m")["id"] for _ in range(50)}
    assert len(ids) == 50 and all(MESSAGE_ID.match(i) for i in ids)


def test_legacy_function_call_and_refusal():
    body = {"id": "c1", "choices": [{"index": 0, "finish_reason": "function_call", "message": {
        "role": "assistant", "content": None, "function_call": {"name": "f", "arguments": "{\"a\": [1]}"}}}]}
    converted = openai_to_anthropic_response(body, "m")
    [use] = converted["content"]
    assert TOOL_ID.match(use["id"]) and use == {"type": "tool_use", "id": use["id"], "name": "f",
                                                 "input": {"a": [1]}}
    assert converted["stop_reason"] == "tool_use"
    Message.model_validate(converted)
    refusal = {"id": "c2", "choices": [{"index": 0, "finish_reason": "stop", "message": {
        "role": "assistant", "content": None, "refusal": "I can't help with that."}}]}
    converted = openai_to_anthropic_response(refusal, "m")
    assert converted["content"] == [{"type": "text", "text": "I can't help with that."}]
    assert converted["stop_reason"] == "refusal"


@pytest.mark.parametrize(("body", "field"), [
    ({"choices": []}, "choices"), ({}, "choices"), ({"choices": [{"message": "x"}]}, "choices[0].message"),
])
def test_unconvertible_openai_response(body, field):
    with pytest.raises(ConversionError, match=rf"^{field.replace('[', '.').replace(']', '.')}: "):
        openai_to_anthropic_response(body, "m")


def test_unconvertible_anthropic_response():
    with pytest.raises(ConversionError, match="^content: "):
        anthropic_to_openai_response({"type": "message"}, "m")
