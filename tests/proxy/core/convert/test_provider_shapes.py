"""What real OpenAI-compatible providers send, one case per behaviour, through both answer paths.

Each case names the shape and where it was seen; the facts come from the peers' regressions
(LiteLLM's adapter, claude-code-router, the claude-code-proxy family) and the providers' docs.
Every converted stream is also read by the official `anthropic` SDK.
"""
import json

import anthropic
import httpx2
import pytest

from proxy.core.convert import (
    OpenAIToAnthropicStream,
    anthropic_to_openai_request,
    inband_error_type,
    is_max_tokens_error,
    message_events,
    openai_to_anthropic_response,
)
from proxy.core.convert.ids import VALID_ID, provider_tool_id
from proxy.core.convert.requests import provider_tool_name

pytestmark = pytest.mark.quick


def _chunk(delta=None, finish=None, **extra):
    choice = {"index": 0, "delta": delta or {}, "finish_reason": finish, **extra.pop("choice", {})}
    return {"object": "chat.completion.chunk", "choices": [choice], **extra}


def _stream(chunks, **kwargs):
    raw = b"".join(f"data: {json.dumps(c)}\n\n".encode() for c in chunks) + b"data: [DONE]\n\n"
    converter = OpenAIToAnthropicStream("m", **kwargs)
    out = converter.feed(raw) + converter.finish()
    return converter, out


def _sdk_final(out: bytes):
    def handler(request):
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=out)
    client = anthropic.Anthropic(base_url="http://shim", api_key="x",
                                 http_client=httpx2.Client(transport=httpx2.MockTransport(handler)))
    with client.messages.stream(model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}]) as s:
        return s.get_final_message()


def _call(index=None, id=None, name=None, arguments=None):
    call = {"type": "function", "function": {}}
    if index is not None:
        call["index"] = index
    if id is not None:
        call["id"] = id
    if name is not None:
        call["function"]["name"] = name
    if arguments is not None:
        call["function"]["arguments"] = arguments
    return call


def _uses(message):
    return [(b.name, b.input) for b in message.content if b.type == "tool_use"]


def test_reused_index_with_a_new_id_per_call_gives_one_block_per_call():
    # Ollama's OpenAI endpoint puts every call at index 0 (ollama#15457), each with its own id
    final = _sdk_final(_stream([
        _chunk({"tool_calls": [_call(0, "call_a", "Write", '{"file_path":"a.txt",')]}),
        _chunk({"tool_calls": [_call(0, None, None, '"content":"x"}')]}),
        _chunk({"tool_calls": [_call(0, "call_b", "Bash", '{"command":"ls"}')]}),
        _chunk(finish="tool_calls")])[1])
    assert _uses(final) == [("Write", {"file_path": "a.txt", "content": "x"}), ("Bash", {"command": "ls"})]
    assert [b.id for b in final.content] == ["call_a", "call_b"] and final.stop_reason == "tool_use"


def test_reused_index_without_ids_splits_calls_by_name():
    final = _sdk_final(_stream([
        _chunk({"tool_calls": [_call(0, None, "Bash", '{"command":"pwd"}')]}),
        _chunk({"tool_calls": [_call(0, None, "Bash", "")]}),
        _chunk({"tool_calls": [_call(0, None, None, '{"command":"ls"}')]}),
        _chunk(finish="stop")])[1])  # and `stop` although tools were called (Ollama)
    assert _uses(final) == [("Bash", {"command": "pwd"}), ("Bash", {"command": "ls"})]
    ids = [b.id for b in final.content]
    assert len(set(ids)) == 2 and all(VALID_ID.match(i) and i.startswith("toolu_01") for i in ids)
    assert final.stop_reason == "tool_use"


def test_text_between_calls_at_a_reused_index():
    final = _sdk_final(_stream([
        _chunk({"content": "First "}),
        _chunk({"tool_calls": [_call(0, "c1", "Read", '{"path":"a"}')]}),
        _chunk({"content": "then "}),
        _chunk({"tool_calls": [_call(0, "c2", "Read", '{"path":"b"}')]}),
        _chunk(finish="tool_use")])[1])  # bifrost's finish_reason
    assert [b.type for b in final.content] == ["text", "tool_use", "text", "tool_use"]
    assert _uses(final) == [("Read", {"path": "a"}), ("Read", {"path": "b"})]
    assert final.stop_reason == "tool_use"


def test_a_name_repeated_in_an_empty_trailing_fragment_is_not_a_call():
    final = _sdk_final(_stream([
        _chunk({"tool_calls": [_call(0, None, "Bash", '{"command":"ls"}')]}),
        _chunk({"tool_calls": [_call(0, None, "Bash", "")]}),
        _chunk(finish="tool_calls")])[1])
    assert _uses(final) == [("Bash", {"command": "ls"})]


def test_calls_without_index_but_with_ids_interleaved():
    final = _sdk_final(_stream([
        _chunk({"tool_calls": [_call(None, "x1", "A", '{"a":'), _call(None, "x2", "B", '{"b":')]}),
        _chunk({"tool_calls": [_call(None, "x2", None, "2}"), _call(None, "x1", None, "1}")]}),
        _chunk(finish="tool_calls")])[1])
    assert _uses(final) == [("A", {"a": 1}), ("B", {"b": 2})]


def test_no_ids_anywhere_give_fresh_unique_message_and_tool_ids():
    chunks = [_chunk({"tool_calls": [_call(0, None, "Bash", '{"command":"ls"}')]}), _chunk(finish="tool_calls")]
    first, second = _sdk_final(_stream(chunks)[1]), _sdk_final(_stream(chunks)[1])
    assert first.id != second.id and first.content[0].id != second.content[0].id
    body = {"id": "chatcmpl-same", "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
        "role": "assistant", "content": None,
        "tool_calls": [{"type": "function", "function": {"name": "Bash", "arguments": "{}"}},
                       {"type": "function", "function": {"name": "Bash", "arguments": "{}"}}]}}]}
    a, b = openai_to_anthropic_response(body, "m"), openai_to_anthropic_response(body, "m")
    ids = [u["id"] for u in a["content"] + b["content"]]
    assert a["id"] != b["id"] and len(set(ids)) == 4


def test_kimi_style_ids_are_made_valid_and_come_back_as_they_were():
    _, out = _stream([_chunk({"tool_calls": [_call(0, "functions.Bash:0", "Bash", '{"command":"ls"}')]}),
                      _chunk(finish="tool_calls")])
    final = _sdk_final(out)
    anthropic_id = final.content[0].id
    assert VALID_ID.match(anthropic_id) and provider_tool_id(anthropic_id) == "functions.Bash:0"
    turn = anthropic_to_openai_request({"messages": [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": anthropic_id, "name": "Bash",
                                           "input": {"command": "ls"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": anthropic_id, "content": "ok"}]}]},
        "kimi-k2")
    assert turn["messages"][1]["tool_calls"][0]["id"] == "functions.Bash:0"
    assert turn["messages"][2] == {"role": "tool", "tool_call_id": "functions.Bash:0", "content": "ok"}


def test_duplicate_ids_within_one_answer_are_made_unique():
    final = _sdk_final(_stream([
        _chunk({"tool_calls": [_call(0, "call_0", "A", "{}"), _call(1, "call_0", "B", "{}")]}),
        _chunk(finish="tool_calls")])[1])
    ids = [b.id for b in final.content]
    assert ids[0] == "call_0" and ids[1] != "call_0" and provider_tool_id(ids[1]) == "call_0"


@pytest.mark.parametrize("together", [False, True])
def test_streamed_refusal_is_text_and_stops_as_refusal(together):
    chunks = ([_chunk({"refusal": "I can't help with that."}, finish="stop")] if together else
              [_chunk({"refusal": "I can't "}), _chunk({"refusal": "help with that."}), _chunk(finish="stop")])
    final = _sdk_final(_stream(chunks)[1])
    assert final.content[0].text == "I can't help with that." and final.stop_reason == "refusal"


def test_vllm_stop_reason_naming_a_stop_sequence():
    chunks = [_chunk({"content": "1, 2, 3"}), _chunk(finish="stop", choice={"stop_reason": "END"})]
    final = _sdk_final(_stream(chunks, stop_sequences=["END"])[1])
    assert (final.stop_reason, final.stop_sequence) == ("stop_sequence", "END")
    body = {"choices": [{"index": 0, "finish_reason": "stop", "stop_reason": "END",
                         "message": {"role": "assistant", "content": "1, 2, 3"}}]}
    message = openai_to_anthropic_response(body, "m", ["END"])
    assert (message["stop_reason"], message["stop_sequence"]) == ("stop_sequence", "END")
    # a token id (vLLM's int form) or a string that is not one of ours is a natural end
    body["choices"][0]["stop_reason"] = 128009
    assert openai_to_anthropic_response(body, "m", ["END"])["stop_reason"] == "end_turn"


@pytest.mark.parametrize("usage, expected", [
    ({"prompt_tokens": 1000, "completion_tokens": 7, "prompt_tokens_details": {"cached_tokens": 800}},
     (200, 7, 800)),
    ({"input_tokens": 1000, "output_tokens": 7, "input_tokens_details": {"cached_tokens": 600}}, (400, 7, 600)),
    ({"prompt_tokens": 1000, "completion_tokens": 7, "prompt_cache_hit_tokens": 900,
      "prompt_cache_miss_tokens": 100}, (100, 7, 900)),  # DeepSeek
    ({"prompt_tokens": 1000, "completion_tokens": 7, "cached_tokens": 250}, (750, 7, 250)),  # Moonshot
    ({"prompt_tokens": 10, "completion_tokens": 1}, (10, 1, 0)),
])
def test_usage_subtracts_cached_tokens(usage, expected):
    converter, out = _stream([_chunk({"content": "hi"}, finish="stop"),
                              {"choices": [], "usage": usage}])
    final = _sdk_final(out)
    got = (final.usage.input_tokens, final.usage.output_tokens, final.usage.cache_read_input_tokens)
    assert got == expected and final.usage.cache_creation_input_tokens == 0
    start = json.loads(out.split(b"\n\n")[0].split(b"data: ", 1)[1])
    assert set(start["message"]["usage"]) == {"input_tokens", "output_tokens",
                                               "cache_creation_input_tokens", "cache_read_input_tokens"}
    body = {"choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "hi"}}],
            "usage": usage}
    u = openai_to_anthropic_response(body, "m")["usage"]
    assert (u["input_tokens"], u["output_tokens"], u["cache_read_input_tokens"]) == expected


def test_whitespace_only_reasoning_opens_no_thinking_block():
    # Z.AI's first reasoning delta is "\n" (peer_cases: topic 9); replayed, an empty block is refused
    final = _sdk_final(_stream([_chunk({"reasoning_content": "\n"}), _chunk({"reasoning_content": " "}),
                                _chunk({"content": "answer"}), _chunk(finish="stop")])[1])
    assert [b.type for b in final.content] == ["text"]
    final = _sdk_final(_stream([_chunk({"content": "\n\n"}),
                                _chunk({"tool_calls": [_call(0, "c", "Bash", "{}")]}),
                                _chunk(finish="tool_calls")])[1])
    assert [b.type for b in final.content] == ["tool_use"]


@pytest.mark.parametrize("error, kind", [
    ({"code": 429, "message": "Rate limit exceeded"}, "rate_limit_error"),
    ({"code": "529", "message": "busy"}, "overloaded_error"),
    ({"status": 401, "message": "bad key"}, "authentication_error"),
    ({"code": "server_error", "message": "Provider disconnected"}, "api_error"),
])
def test_inband_error_chunk_is_typed_by_its_status(error, kind):
    # OpenRouter: a 200 stream carrying {"error": {...}} and finish_reason "error"
    converter, out = _stream([_chunk({"content": "par"}),
                              _chunk({}, finish="error", error=error)])
    assert not converter.complete
    last = json.loads(out.rstrip(b"\n").split(b"\n")[-1][6:])
    assert last == {"type": "error", "error": {"type": kind, "message": error["message"]}}
    assert inband_error_type(error) == kind
    with pytest.raises(anthropic.APIStatusError):
        _sdk_final(out)


def test_max_tokens_400_is_recognised_and_other_400s_are_not():
    body = json.dumps({"error": {"message": "Could not finish the message because max_tokens or model output "
                                            "limit was reached. Please try again with higher max_tokens.",
                                 "type": "invalid_request_error", "param": None, "code": None}}).encode()
    assert is_max_tokens_error(400, body)
    assert not is_max_tokens_error(400, b'{"error":{"message":"max_tokens must be at most 8192"}}')
    assert not is_max_tokens_error(500, body)


def test_a_whole_message_written_as_a_stream_reads_back_the_same():
    body = {"choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
        "role": "assistant", "content": "Let me look.", "reasoning_content": "think",
        "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "Read",
                                                                        "arguments": '{"p":"é"}'}}]}}],
        "usage": {"prompt_tokens": 50, "completion_tokens": 9, "prompt_tokens_details": {"cached_tokens": 40}}}
    message = openai_to_anthropic_response(body, "m")
    final = _sdk_final(message_events(message))
    assert final.model_dump(exclude_none=True) == anthropic.types.Message.model_validate(
        message).model_dump(exclude_none=True)


def test_long_and_odd_tool_names_are_shortened_and_restored():
    long_name = "mcp__a_very_long_server_name_for_testing__and_an_even_longer_tool_name_x"
    names: dict = {}
    out = anthropic_to_openai_request({"messages": [{"role": "user", "content": "x"}], "tools": [
        {"name": long_name, "input_schema": {"type": "object"}},
        {"name": "mcp__srv__tool.with.dots", "input_schema": {"type": "object"}},
        {"name": "", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "tool", "name": long_name}}, "p", names)
    sent = [t["function"]["name"] for t in out["tools"]]
    assert len(sent) == 2 and all(len(n) <= 64 and n for n in sent)
    assert out["tool_choice"]["function"]["name"] == sent[0] == provider_tool_name(long_name)
    assert names == {sent[0]: long_name, sent[1]: "mcp__srv__tool.with.dots"}
    final = _sdk_final(_stream([_chunk({"tool_calls": [_call(0, "c", sent[0], "{}")]}), _chunk(finish="tool_calls")],
                               tool_names=names)[1])
    assert final.content[0].name == long_name
    message = openai_to_anthropic_response({"choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
        "role": "assistant", "tool_calls": [{"id": "c", "function": {"name": sent[1], "arguments": "{}"}}]}}]},
        "m", None, names)
    assert message["content"][0]["name"] == "mcp__srv__tool.with.dots"


def test_an_image_inside_a_tool_result_reaches_the_provider_as_an_image_part():
    out = anthropic_to_openai_request({"messages": [
        {"role": "user", "content": "look"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "Read", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": [
            {"type": "text", "text": "screenshot"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}]}]}]}, "p")
    tool, user = out["messages"][2], out["messages"][3]
    assert tool["role"] == "tool" and tool["tool_call_id"] == "t1" and isinstance(tool["content"], str)
    assert user["role"] == "user" and {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}} \
        in user["content"]
