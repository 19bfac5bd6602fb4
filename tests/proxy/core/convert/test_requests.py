"""Request conversion, both directions: the fixture cases, the real SDKs accepting the result, edges."""
import json
from pathlib import Path

import anthropic
import httpx2
import openai
import pytest

from proxy.core.convert import (
    ConversionError,
    anthropic_to_openai_request,
    openai_to_anthropic_request,
)
from proxy.core.convert.requests import reasoning_effort

pytestmark = pytest.mark.quick

CASES_DIR = Path(__file__).resolve().parents[4] / "fixtures" / "conversion"
DIRECTIONS = {"a2o_request", "o2a_request", "o2a_response", "a2o_response", "o2a_stream", "a2o_stream"}


def _cases(*directions):
    cases = [(p.stem, json.loads(p.read_text())) for p in sorted(CASES_DIR.glob("*.json"))]
    return [pytest.param(case, id=stem) for stem, case in cases if case["direction"] in directions]


CONVERT = {"a2o_request": anthropic_to_openai_request, "o2a_request": openai_to_anthropic_request}


def test_fixture_files_are_well_formed():
    files = sorted(CASES_DIR.glob("*.json"))
    assert len(files) >= 20
    seen = set()
    for path in files:
        case = json.loads(path.read_text())
        assert {"description", "direction", "model", "input", "expected"} <= case.keys(), path.name
        assert case["direction"] in DIRECTIONS, path.name
        assert path.stem.startswith(case["direction"]), path.name
        seen.add(case["direction"])
    assert seen == DIRECTIONS


@pytest.mark.parametrize("case", _cases("a2o_request", "o2a_request"))
def test_request_case(case):
    assert CONVERT[case["direction"]](case["input"], case["model"]) == case["expected"]


def _capturing(response: httpx2.Response):
    seen = []

    def handler(request):
        seen.append(json.loads(request.content))
        return response
    return httpx2.Client(transport=httpx2.MockTransport(handler)), seen


@pytest.mark.parametrize("case", _cases("a2o_request"))
def test_openai_sdk_accepts_converted_request(case):
    body = anthropic_to_openai_request(case["input"], case["model"])
    if body.get("stream"):
        response = httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=b"data: [DONE]\n\n")
    else:
        response = httpx2.Response(200, json={"id": "c", "object": "chat.completion", "created": 0, "model": "m",
                                              "choices": []})
    http, seen = _capturing(response)
    with openai.OpenAI(base_url="http://upstream/v1", api_key="x", http_client=http) as client:
        result = client.chat.completions.create(**body)  # an unknown keyword would raise TypeError
        if body.get("stream"):
            assert list(result) == []
    assert seen == [body]


@pytest.mark.parametrize("case", _cases("o2a_request"))
def test_anthropic_sdk_accepts_converted_request(case):
    body = openai_to_anthropic_request(case["input"], case["model"])
    body.pop("stream", None)
    # anthropic 2.x dropped temperature/top_p from create(); the converter still forwards them (some
    # Anthropic-compatible providers honour them), so they travel as extra_body here.
    sampling = {k: body.pop(k) for k in ("temperature", "top_p") if k in body}
    http, seen = _capturing(httpx2.Response(200, json={
        "id": "msg_1", "type": "message", "role": "assistant", "model": "m", "content": [],
        "stop_reason": "end_turn", "stop_sequence": None, "usage": {"input_tokens": 1, "output_tokens": 1}}))
    with anthropic.Anthropic(base_url="http://upstream", api_key="x", http_client=http) as client:
        client.messages.create(**body, extra_body=sampling or None)
    assert seen == [{**body, **sampling}]


@pytest.mark.parametrize("case", _cases("a2o_request"))
def test_unsupported_fields_are_never_forwarded(case):
    text = json.dumps(anthropic_to_openai_request(case["input"], case["model"]))
    for field in ("cache_control", "context_management", "output_config", "top_k", "signature",
                  "redacted_thinking", "input_schema", "stop_sequences", "metadata", "thinking\""):
        assert field not in text


def test_tool_result_round_trip_keeps_ids_inputs_and_results():
    source = json.loads((CASES_DIR / "a2o_request_tool_round_trip.json").read_text())["input"]
    back = openai_to_anthropic_request(anthropic_to_openai_request(source, "glm"), "claude")
    uses = [b for m in back["messages"] for b in m["content"] if b["type"] == "tool_use"]
    results = [b for m in back["messages"] for b in m["content"] if b["type"] == "tool_result"]
    assert [(u["id"], u["input"]) for u in uses] == [
        ("toolu_01", {"city": "Paris"}), ("toolu_02", {"city": "Oslo"}), ("toolu_03", {"city": "Nowhere"})]
    assert [(r["tool_use_id"], r["content"]) for r in results] == [
        ("toolu_01", "18C sunny"), ("toolu_02", "-2C\n\nsnow"), ("toolu_03", "ERROR: unknown city")]
    assert [m["role"] for m in back["messages"]] == ["user", "assistant", "user"]
    assert back["tools"] == source["tools"]


@pytest.mark.parametrize(("thinking", "effort"), [
    ({"type": "enabled", "budget_tokens": 1024}, "low"),
    ({"type": "enabled", "budget_tokens": 4095}, "low"),
    ({"type": "enabled", "budget_tokens": 4096}, "medium"),
    ({"type": "enabled", "budget_tokens": 16383}, "medium"),
    ({"type": "enabled", "budget_tokens": 16384}, "high"),
    ({"type": "adaptive"}, "medium"),
    ({"type": "disabled"}, None),
    (None, None),
])
def test_reasoning_effort_mapping(thinking, effort):
    assert reasoning_effort(thinking) == effort
    body = {"max_tokens": 10, "messages": [], "thinking": thinking}
    assert anthropic_to_openai_request(body, "m").get("reasoning_effort") == effort


def test_tool_choice_without_tools_is_dropped():
    body = {"max_tokens": 5, "messages": [], "tool_choice": {"type": "any", "disable_parallel_tool_use": True}}
    out = anthropic_to_openai_request(body, "m")
    assert "tool_choice" not in out and "parallel_tool_calls" not in out


def test_openai_parallel_false_without_choice_becomes_auto():
    tools = [{"type": "function", "function": {"name": "f"}}]
    out = openai_to_anthropic_request({"messages": [], "tools": tools, "parallel_tool_calls": False}, "m")
    assert out["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    assert out["tools"] == [{"name": "f", "input_schema": {"type": "object", "properties": {}}}]


@pytest.mark.parametrize("convert", [anthropic_to_openai_request, openai_to_anthropic_request])
@pytest.mark.parametrize(("body", "field"), [
    ({"messages": "hi"}, "messages"),
    ({}, "messages"),
    ([], "body"),
    ({"messages": ["hi"]}, "messages[0]"),
    ({"messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
    ({"messages": [{"role": "user", "content": 42}]}, "messages[0].content"),
])
def test_unconvertible_input_names_the_field(convert, body, field):
    with pytest.raises(ConversionError) as info:
        convert(body, "m")
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")
    assert isinstance(info.value, ValueError)


def test_type_confused_fields_name_their_path():
    cases = [
        (anthropic_to_openai_request, {"messages": [{"role": "user", "content": [
            {"type": "text", "text": "a"}, {"type": "image", "source": 5}]}]},
         "messages[0].content[1].source", "expected an object, got a number"),
        (anthropic_to_openai_request, {"messages": [{"role": "user", "content": [
            {"type": "image", "source": {"type": "url", "url": ["x"]}}]}]},
         "messages[0].content[0].source.url", "expected a string, got a list"),
        (anthropic_to_openai_request, {"messages": [{"role": "assistant", "content": [
            {"type": "text", "text": {"a": 1}}]}]}, "messages[0].content[0].text", "got an object"),
        (anthropic_to_openai_request, {"messages": [{"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text", "text": 1}]}]}]},
         "messages[0].content[0].content[0].text", "got a number"),
        (anthropic_to_openai_request, {"system": [{"type": "text", "text": None}, {"type": "text", "text": 2}],
                                       "messages": []}, "system[1].text", "got a number"),
        (anthropic_to_openai_request, {"messages": [], "metadata": ["u"]}, "metadata", "got a list"),
        (anthropic_to_openai_request, {"messages": [], "tools": 3}, "tools", "got a number"),
        (anthropic_to_openai_request, {"messages": [], "thinking": {"type": "enabled", "budget_tokens": "9"}},
         "thinking.budget_tokens", "got a string"),
        (openai_to_anthropic_request, {"messages": [], "temperature": {"t": 1}}, "temperature", "got an object"),
        (openai_to_anthropic_request, {"messages": [], "stop": 7}, "stop", "got a number"),
        (openai_to_anthropic_request, {"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": 5}}]}]}, "messages[0].content[0].image_url.url",
         "got a number"),
        (openai_to_anthropic_request, {"messages": [{"role": "assistant", "tool_calls": [
            {"function": "f"}]}]}, "messages[0].tool_calls[0].function", "got a string"),
        (openai_to_anthropic_request, {"messages": [{"role": "assistant", "tool_calls": 1}]},
         "messages[0].tool_calls", "got a number"),
        (openai_to_anthropic_request, {"messages": [], "tools": [{"type": "function", "function":
                                       {"name": "f"}}], "tool_choice": {"function": []}},
         "tool_choice.function", "got a list"),
    ]
    for convert, body, field, problem in cases:
        with pytest.raises(ConversionError) as info:
            convert(body, "m")
        assert info.value.field == field, (body, str(info.value))
        assert problem in str(info.value), (body, str(info.value))


def test_odd_but_valid_values_convert():
    out = anthropic_to_openai_request({"messages": [{"role": "user", "content": "hi"}],
                                       "tool_choice": {"type": {"x": 1}}, "tools": [
                                           {"name": "f", "input_schema": {}}]}, "m")
    assert "tool_choice" not in out
    out = openai_to_anthropic_request({"messages": [], "temperature": 10**400, "tool_choice": ["x"],
                                       "tools": [{"type": "function", "function": {"name": "f"}}]}, "m")
    assert out["temperature"] == 1.0 and "tool_choice" not in out
    assert openai_to_anthropic_request({"messages": [], "temperature": -10**400}, "m")["temperature"] == -10**400


def test_lone_surrogates_convert_to_utf8_json():
    from proxy.core.convert.requests import json_bytes
    body = {"messages": [{"role": "user", "content": [
        {"type": "text", "text": "\ud800"},
        {"type": "tool_result", "tool_use_id": "id\udfff", "content": "x"}]},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "n\ud800 x",
                                          "input": {"q": "\udc00"}}]}]}
    data = json_bytes(anthropic_to_openai_request(body, "m"))
    data.decode("utf-8")
    assert any("\ud800" in str(m["content"]) for m in json.loads(data)["messages"])
    back = openai_to_anthropic_request({"messages": [{"role": "tool", "tool_call_id": "c\ud800",
                                                      "content": "\udfff"}]}, "m")
    json_bytes(back).decode("utf-8")
