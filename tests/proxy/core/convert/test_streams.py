"""Stream conversion, both directions: fixture cases, block discipline, any chunking, the real SDKs' parsers."""
import json
from pathlib import Path

import anthropic
import httpx2
import openai
import pytest

from proxy.core.convert import AnthropicToOpenAIStream, OpenAIToAnthropicStream
from tests.proxy.core.convert.frames import sse_events
from tests.proxy.core.convert.fresh_ids import FRESH_BYTES, settle_fresh_ids

pytestmark = pytest.mark.quick

CASES_DIR = Path(__file__).resolve().parents[4] / "fixtures" / "conversion"
CONVERTERS = {"o2a_stream": OpenAIToAnthropicStream, "a2o_stream": AnthropicToOpenAIStream}


def _cases(*directions):
    cases = [(p.stem, json.loads(p.read_text())) for p in sorted(CASES_DIR.glob("*.json"))]
    return [pytest.param(case, id=stem) for stem, case in cases if case["direction"] in directions]


def _upstream_bytes(case) -> bytes:
    if case["direction"] == "o2a_stream":
        return b"".join(b"data: [DONE]\n\n" if item == "[DONE]" else f"data: {json.dumps(item)}\n\n".encode()
                        for item in case["input"])
    return b"".join(f"event: {item['type']}\ndata: {json.dumps(item)}\n\n".encode() for item in case["input"])


def _convert(case, size: int | None = None, raw: bytes | None = None):
    raw = _upstream_bytes(case) if raw is None else raw
    size = size or len(raw)
    converter = CONVERTERS[case["direction"]](case["model"])
    out = b"".join(converter.feed(raw[i:i + size]) for i in range(0, len(raw), size))
    out += converter.finish(case.get("finish_error"))
    return converter, FRESH_BYTES.sub(b"<fresh>", out)  # ids made anew each time, written as fixtures do




def _describe(name, obj) -> str:
    assert name == obj["type"]
    if name == "content_block_start":
        return f"{name}:{obj['content_block']['type']}"
    if name == "content_block_delta":
        return f"{name}:{obj['delta']['type']}"
    return name


def _assert_block_discipline(events: list[tuple[str, dict]]) -> None:
    """One message_start first; blocks numbered 0..n, each started, fed and stopped before the next."""
    assert events[0][0] == "message_start"
    assert [name for name, _ in events].count("message_start") == 1
    open_index, next_index = None, 0
    for name, obj in events:
        if name == "content_block_start":
            assert open_index is None and obj["index"] == next_index
            open_index, next_index = obj["index"], next_index + 1
        elif name == "content_block_delta":
            assert obj["index"] == open_index, "delta for a block that is not open"
        elif name == "content_block_stop":
            assert obj["index"] == open_index
            open_index = None
        elif name in ("message_delta", "message_stop", "error"):
            assert open_index is None, f"{name} with block {open_index} still open"
    assert events[-1][0] in ("message_stop", "error")


def _sdk_client(sdk, body: bytes):
    def handler(request):
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=body)
    http = httpx2.Client(transport=httpx2.MockTransport(handler))
    if sdk == "anthropic":
        return anthropic.Anthropic(base_url="http://shim", api_key="x", http_client=http)
    return openai.OpenAI(base_url="http://shim/v1", api_key="x", http_client=http)


# --- OpenAI → Anthropic -------------------------------------------------------------------------

@pytest.mark.parametrize("case", _cases("o2a_stream"))
def test_openai_to_anthropic_case(case):
    converter, out = _convert(case)
    events = [(name, json.loads(data)) for name, data in sse_events(out)]
    expected = case["expected"]
    assert [_describe(name, obj) for name, obj in events] == expected["events"]
    _assert_block_discipline(events)
    assert converter.events == len(events)
    assert converter.complete is expected["complete"]
    assert settle_fresh_ids(converter.message, expected["message"]) == expected["message"]
    assert converter.stop_reason == expected["message"]["stop_reason"]
    assert converter.usage == expected["message"]["usage"]
    if expected["complete"]:
        assert converter.error is None
    else:
        assert events[-1][1] == {"type": "error", "error": {"type": "api_error", "message": expected["error"]}}
    assert converter.finish() == b"" and converter.finish("late") == b""
    assert converter.feed(b'data: {"choices":[{"index":0,"delta":{"content":"x"}}]}\n\n') == b""


@pytest.mark.parametrize("case", _cases("o2a_stream"))
def test_anthropic_sdk_parses_converted_stream(case):
    _, out = _convert(case)
    expected = case["expected"]["message"]
    with _sdk_client("anthropic", out) as client:
        stream = client.messages.stream(model="m", max_tokens=10, messages=[{"role": "user", "content": "x"}])
        if not case["expected"]["complete"]:
            with pytest.raises(anthropic.APIStatusError) as info, stream as events:
                events.get_final_message()
            assert info.value.body["error"] == {"type": "api_error", "message": case["expected"]["error"]}
            return
        with stream as events:
            final = events.get_final_message()
    assert [b.model_dump(include={"type", "text", "thinking", "signature", "id", "name", "input"})
            for b in final.content] == [{**b, "id": "<fresh>"} if b.get("id") == "<fresh>" else b
                                        for b in expected["content"]]
    assert final.stop_reason == expected["stop_reason"]
    assert final.usage.input_tokens == expected["usage"]["input_tokens"]
    assert final.usage.output_tokens == expected["usage"]["output_tokens"]
    assert final.id == "<fresh>" and final.model == case["model"]  # (bytes settled by _convert)


# --- both directions ------------------------------------------------------------------------------
# (Anthropic → OpenAI alone: test_streams_openai.py; the SSE framing both share: test_framing.py)

@pytest.mark.parametrize("size", [1, 7])
@pytest.mark.parametrize("case", _cases("o2a_stream", "a2o_stream"))
def test_any_chunking_gives_the_same_bytes(case, size):
    assert _convert(case, size)[1] == _convert(case)[1]


@pytest.mark.parametrize("case", _cases("o2a_stream", "a2o_stream"))
def test_crlf_line_endings_give_the_same_bytes(case):
    crlf = _upstream_bytes(case).replace(b"\n", b"\r\n")
    assert _convert(case, 3, raw=crlf)[1] == _convert(case)[1]


def test_done_alone_still_gives_a_well_formed_message():
    converter = OpenAIToAnthropicStream("m")
    events = [json.loads(data) for _, data in sse_events(converter.feed(b"data: [DONE]\n\n"))]
    assert [e["type"] for e in events] == ["message_start", "ping", "message_delta", "message_stop"]
    assert converter.complete and converter.stop_reason == "end_turn"


def test_blocks_held_back_behind_an_unfinished_tool_call_come_in_the_order_they_began():
    """Text and a second call that arrive while the first call's arguments are still open are
    held back, then emitted in the order they arrived: text, then the second call."""
    def chunk(delta, finish=None):
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return f"data: {json.dumps({'id': 'c1', 'choices': [choice]})}\n\n".encode()

    def call(index, args, name=None, cid=None):
        fn = {"arguments": args, **({"name": name} if name else {})}
        return {"tool_calls": [{"index": index, **({"id": cid} if cid else {}), "function": fn}]}

    raw = b"".join([
        chunk(call(0, '{"a":', "first", "call_1")),
        chunk({"content": "between"}),
        chunk(call(1, '{"b":2}', "second", "call_2")),
        chunk(call(0, "1}")),
        chunk({}, "tool_calls"),
        b"data: [DONE]\n\n"])
    converter = OpenAIToAnthropicStream("m")
    events = [(name, json.loads(data))
              for name, data in sse_events(converter.feed(raw) + converter.finish())]
    starts = [obj["content_block"] for name, obj in events if name == "content_block_start"]
    assert [(b["type"], b.get("name")) for b in starts] == [
        ("tool_use", "first"), ("text", None), ("tool_use", "second")]
    _assert_block_discipline(events)
    assert [b["type"] for b in converter.message["content"]] == ["tool_use", "text", "tool_use"]
