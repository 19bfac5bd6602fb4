"""The awkward OpenAI stream shapes (harness.mock_shapes) and the mock's scenario responder hook."""
import json
import re

import httpx
import pytest

from harness import mock_shapes as ms
from harness.mock_openai_wire import CREATED, DONE
from harness.mock_upstream import MockUpstream

pytestmark = pytest.mark.quick

MODEL = "glm-4.6"
WRITE = ms.Call("Write", {"file_path": "/w/out.txt", "content": "Grüße — 世界 😀\n\"q\""}, "call_w1")
BASH = ms.Call("Bash", {"command": "printf ok > /w/b.txt"}, "call_b2")


def _objects(chunks):
    assert chunks[-1] == DONE and DONE not in chunks[:-1]
    for chunk in chunks[:-1]:
        assert chunk.startswith(b"data: {") and chunk.endswith(b"}\n\n") and chunk.count(b"\n") == 2
    return ms.chunk_objects(chunks)


def _frags(chunks):
    return [frag for obj in _objects(chunks) for choice in obj["choices"]
            for frag in choice["delta"].get("tool_calls") or []]


def _finish(chunks):
    return [c["finish_reason"] for obj in _objects(chunks) for c in obj["choices"] if c["finish_reason"]]


def test_ascii_json_escapes_every_non_ascii_character():
    text = ms.ascii_json({"c": "ü世😀"})
    assert text == '{"c":"\\u00fc\\u4e16\\ud83d\\ude00"}' and text.isascii()
    assert WRITE.arguments_json().isascii() and json.loads(WRITE.arguments_json()) == WRITE.arguments
    assert ms.Call("X", '{"raw":1}').arguments_json() == '{"raw":1}'


def test_cut_positions_fall_inside_escapes_and_strings():
    args = '{"path":"abcdef","c":"\\u00fcx"}'
    assert ms.cut_positions(args) == [4, 12, 23, 26]  # mid "path", mid "abcdef", inside the escape
    pieces = ms.cut_arguments(args)
    assert "".join(pieces) == args and all(pieces)
    assert pieces == ['{"pa', 'th":"abc', 'def","c":"\\', 'u00', 'fcx"}']


def test_cut_positions_leave_escaped_backslashes_and_short_strings_whole():
    args = '{"a":"\\\\u0041"}'  # a literal backslash then "u0041": no escape to cut inside
    assert ms.cut_positions(args) == [10]
    assert ms.cut_positions('{"ab":1}') == []


def test_usage_with_cached_tokens_counts_them_inside_prompt_tokens():
    assert ms.usage(100, 7) == {"prompt_tokens": 100, "completion_tokens": 7, "total_tokens": 107}
    cached = ms.usage(100, 7, 80)
    assert cached["prompt_tokens"] == 100 and cached["prompt_tokens_details"]["cached_tokens"] == 80
    assert cached["total_tokens"] == 107 and cached["completion_tokens_details"]["reasoning_tokens"] == 0


def test_text_answer_byte_exact():
    chunks = ms.text_answer(MODEL, "Hi there", usage_obj=ms.usage(10, 2), pieces=2)
    head = (b'data: {"id":"chatcmpl-shape-0001","object":"chat.completion.chunk","created":1700000000,'
            b'"model":"glm-4.6",')
    assert CREATED == 1_700_000_000
    assert chunks == [
        head + b'"choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,'
               b'"finish_reason":null}],"usage":null}\n\n',
        head + b'"choices":[{"index":0,"delta":{"content":"Hi t"},"logprobs":null,'
               b'"finish_reason":null}],"usage":null}\n\n',
        head + b'"choices":[{"index":0,"delta":{"content":"here"},"logprobs":null,'
               b'"finish_reason":null}],"usage":null}\n\n',
        head + b'"choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],'
               b'"usage":null}\n\n',
        head + b'"choices":[],"usage":{"prompt_tokens":10,"completion_tokens":2,"total_tokens":12}}\n\n',
        DONE]


def test_reused_index_new_ids_opens_each_call_at_index_zero_with_its_own_id():
    chunks = ms.reused_index_new_ids(MODEL, [WRITE, BASH], between=["Writing.", "Running."])
    frags = _frags(chunks)
    assert {f["index"] for f in frags} == {0}
    assert [f["id"] for f in frags if "id" in f] == ["call_w1", "call_b2"]
    assert [f["function"]["name"] for f in frags if "name" in f["function"]] == ["Write", "Bash"]
    texts = [c["delta"]["content"] for o in _objects(chunks) for c in o["choices"] if c["delta"].get("content")]
    assert texts == ["Writing.", "Running."]
    assert ms.joined_arguments(chunks) == [("call_w1", "Write", WRITE.arguments_json()),
                                           ("call_b2", "Bash", BASH.arguments_json())]
    assert _finish(chunks) == ["tool_calls"]
    with pytest.raises(AssertionError):
        ms.reused_index_new_ids(MODEL, [WRITE, BASH._replace(id="call_w1")])


def test_no_ids_has_no_id_anywhere():
    chunks = ms.no_ids(MODEL, [WRITE, BASH], usage_obj=ms.usage(5, 1))
    objects = _objects(chunks)
    assert all("id" not in obj for obj in objects)
    assert all("id" not in f and "type" not in f for f in _frags(chunks))
    assert [f["index"] for f in _frags(chunks) if "name" in f["function"]] == [0, 1]
    assert ms.joined_arguments(chunks) == [(None, "Write", WRITE.arguments_json()),
                                           (None, "Bash", BASH.arguments_json())]
    assert objects[-1]["choices"] == [] and objects[-1]["usage"]["prompt_tokens"] == 5


def test_parallel_interleaved_opens_all_calls_then_alternates_cut_fragments():
    chunks = ms.parallel_interleaved(MODEL, [WRITE, BASH])
    frags = _frags(chunks)
    assert [(f["index"], f["id"], f["function"]["name"]) for f in frags[:2]] == [
        (0, "call_w1", "Write"), (1, "call_b2", "Bash")]
    rest = frags[2:]
    assert all("id" not in f and "name" not in f["function"] for f in rest)
    assert [f["index"] for f in rest[:4]] == [0, 1, 0, 1]  # round robin while both have pieces
    write_pieces = [f["function"]["arguments"] for f in rest if f["index"] == 0]
    assert write_pieces == ms.cut_arguments(WRITE.arguments_json())
    args = WRITE.arguments_json()
    ends = [sum(map(len, write_pieces[:i + 1])) for i in range(len(write_pieces) - 1)]
    escapes = [m.span() for m in re.finditer(r"\\u[0-9a-f]{4}", args)]
    assert len(escapes) == 7  # ü ß — 世 界, and 😀 as a surrogate pair
    assert all(any(a < end < b for end in ends) for a, b in escapes)  # every escape is cut inside
    assert any(args[end - 1] == "\\" for end in ends)  # one fragment ends on the escape's backslash
    joined = ms.joined_arguments(chunks)
    assert [json.loads(args) for _, _, args in joined] == [WRITE.arguments, BASH.arguments]


def test_kimi_style_ids_and_finish_stop():
    kimi = ms.kimi_style_ids(MODEL, [WRITE, BASH])
    assert [i for i, _, _ in ms.joined_arguments(kimi)] == ["functions.Write:0", "functions.Bash:1"]
    assert _finish(kimi) == ["tool_calls"]
    stop = ms.finish_stop_with_tool_calls(MODEL, [WRITE, BASH])
    assert [i for i, _, _ in ms.joined_arguments(stop)] == ["call_w1", "call_b2"]
    assert _finish(stop) == ["stop"]
    assert _finish(ms.tool_calls(MODEL, [WRITE])) == ["tool_calls"]


@pytest.mark.parametrize("finish_in_last", [False, True], ids=["finish_alone", "finish_in_last_chunk"])
def test_refusal_streams_delta_refusal(finish_in_last):
    chunks = ms.refusal(MODEL, "I can't help with that.", finish_in_last=finish_in_last)
    choices = [c for o in _objects(chunks) for c in o["choices"]]
    assert choices[0]["delta"] == {"role": "assistant", "content": None, "refusal": ""}
    assert "".join(c["delta"].get("refusal") or "" for c in choices) == "I can't help with that."
    assert not any(c["delta"].get("content") for c in choices)
    assert _finish(chunks) == ["stop"]
    assert bool(choices[-1]["delta"].get("refusal")) is finish_in_last


def test_joined_arguments_follows_the_contract_framing():
    # no index and no id: continues the most recent call; a new name after complete args: new call
    def data(frag):
        return f"data: {json.dumps({'choices': [{'index': 0, 'delta': {'tool_calls': [frag]}}]})}\n\n".encode()
    chunks = [data({"index": 0, "function": {"name": "A", "arguments": "{\"x\""}}),
              data({"function": {"arguments": ":1}"}}),
              data({"index": 0, "function": {"name": "B", "arguments": "{}"}}), DONE]
    assert ms.joined_arguments(chunks) == [(None, "A", '{"x":1}'), (None, "B", "{}")]


# the responder hook of MockUpstream

@pytest.fixture(scope="module")
def server():
    with MockUpstream("zai") as mock:
        yield mock


@pytest.fixture
def mock(server):
    server.reset()
    yield server
    server.reset()


def _post(mock, payload, path="/v1/chat/completions"):
    with httpx.Client(trust_env=False, timeout=5) as http:
        return http.post(f"{mock.base_url}{path}", json=payload)


def test_responder_chunks_json_and_none(mock):
    seen = []

    def responder(payload):
        seen.append(payload)
        if payload.get("tools"):
            return ms.no_ids(payload["model"], [BASH])
        if payload.get("max_tokens") == 1:
            return {"id": "x", "object": "chat.completion", "choices": []}
        return None

    mock.set_responder(responder)
    streamed = _post(mock, {"model": MODEL, "stream": True, "tools": [{"type": "function"}],
                            "messages": [{"role": "user", "content": "go"}]})
    assert streamed.status_code == 200 and streamed.headers["content-type"].startswith("text/event-stream")
    assert streamed.content == b"".join(ms.no_ids(MODEL, [BASH]))
    assert _post(mock, {"model": MODEL, "max_tokens": 1, "messages": []}).json() == {
        "id": "x", "object": "chat.completion", "choices": []}
    default = _post(mock, {"model": MODEL, "messages": [
        {"role": "user", "content": "Reply with exactly: DEF and nothing else."}]})
    assert default.json()["choices"][0]["message"]["content"] == "DEF"
    assert len(seen) == 3
    calls = mock.calls
    assert [c.status for c in calls] == [200, 200, 200] and all(c.finished for c in calls)
    assert calls[0].sent == streamed.content


def test_responder_is_openai_only_and_cleared_by_reset(mock):
    mock.set_responder(lambda payload: ms.text_answer(MODEL, "from responder"))
    anthropic = _post(mock, {"model": "claude-haiku-4-5", "max_tokens": 8,
                             "messages": [{"role": "user", "content": "hi"}]}, "/v1/messages")
    assert anthropic.json()["type"] == "message"  # the Anthropic side keeps its own rules
    mock.script(text="scripted wins")
    assert _post(mock, {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}).json()[
        "choices"][0]["message"]["content"] == "scripted wins"
    mock.reset()
    reply = _post(mock, {"model": MODEL, "messages": [
        {"role": "user", "content": "Reply with exactly: AFTER and nothing else."}]})
    assert reply.json()["choices"][0]["message"]["content"] == "AFTER"


def test_faults_still_apply_before_the_responder(mock):
    mock.set_responder(lambda payload: ms.text_answer(MODEL, "never"))
    mock.script("status=429")
    assert _post(mock, {"model": MODEL, "messages": []}).status_code == 429
