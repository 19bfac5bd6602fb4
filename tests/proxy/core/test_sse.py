import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.core.sse import (
    Event,
    EventSplitter,
    SseEvents,
    SseMeter,
    error_event,
    events_of,
    parse_event,
    tokens_from_message,
)

pytestmark = pytest.mark.quick


def _event(name, obj):
    return f"event: {name}\ndata: {json.dumps(obj)}\n\n".encode()


STREAM = b"".join([
    _event("message_start", {"type": "message_start", "message": {"usage": {
        "input_tokens": 12, "output_tokens": 1, "cache_read_input_tokens": 3}}}),
    _event("content_block_start", {"type": "content_block_start", "index": 0}),
    _event("ping", {"type": "ping"}),
    _event("content_block_delta", {"type": "content_block_delta", "delta": {"text": "héllo 🙂"}}),
    _event("content_block_stop", {"type": "content_block_stop", "index": 0}),
    _event("message_delta", {"type": "message_delta", "usage": {"output_tokens": 7}}),
    _event("message_stop", {"type": "message_stop"}),
])


@pytest.mark.parametrize("size", [1, 2, 7, 64, len(STREAM)])
def test_meter_counts_whatever_the_chunking(size):
    meter = SseMeter()
    for i in range(0, len(STREAM), size):
        meter.feed(STREAM[i:i + size])
    assert (meter.events, meter.bytes, meter.complete) == (7, len(STREAM), True)
    assert (meter.in_tokens, meter.out_tokens, meter.cache_read_tokens) == (12, 7, 3)


def test_meter_without_message_stop_is_incomplete():
    meter = SseMeter()
    meter.feed(STREAM[: STREAM.index(b"event: message_stop")])
    assert not meter.complete and meter.events == 6


def test_meter_reads_error_events_and_crlf():
    meter = SseMeter()
    meter.feed(error_event("overloaded_error", "busy").replace(b"\n", b"\r\n"))
    assert meter.error_type == "overloaded_error" and meter.events == 1


def test_tokens_from_message():
    body = json.dumps({"usage": {"input_tokens": 5, "output_tokens": 2}}).encode()
    assert tokens_from_message(body)["in_tokens"] == 5
    assert tokens_from_message(b"not json") == {}


def test_assemble_message_and_signatures():
    from proxy.core.sse import assemble_message
    stream = b"".join([
        _event("message_start", {"type": "message_start", "message": {"id": "m1", "role": "assistant",
                                                                       "usage": {"input_tokens": 3}}}),
        _event("content_block_start", {"type": "content_block_start", "index": 0,
                                       "content_block": {"type": "thinking", "thinking": "", "signature": ""}}),
        _event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                       "delta": {"type": "thinking_delta", "thinking": "hmm"}}),
        _event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                       "delta": {"type": "signature_delta", "signature": "SIG1"}}),
        _event("content_block_start", {"type": "content_block_start", "index": 1,
                                       "content_block": {"type": "tool_use", "id": "t1", "name": "f", "input": {}}}),
        _event("content_block_delta", {"type": "content_block_delta", "index": 1,
                                       "delta": {"type": "input_json_delta", "partial_json": "{\"a\": "}}),
        _event("content_block_delta", {"type": "content_block_delta", "index": 1,
                                       "delta": {"type": "input_json_delta", "partial_json": "1}"}}),
        _event("message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use"},
                                 "usage": {"output_tokens": 9}}),
    ])
    msg = assemble_message(stream)
    assert msg["content"][0] == {"type": "thinking", "thinking": "hmm", "signature": "SIG1"}
    assert msg["content"][1]["input"] == {"a": 1} and msg["stop_reason"] == "tool_use"
    assert msg["usage"] == {"input_tokens": 3, "output_tokens": 9}
    meter = SseMeter()
    for i in range(0, len(stream), 5):
        meter.feed(stream[i:i + 5])
    assert meter.signatures == ["SIG1"]
    assert assemble_message(b"garbage") is None


def test_openai_stream_done_and_usage():
    meter = SseMeter()
    meter.feed(b'data: {"choices":[{"delta":{"content":"hi"}}]}\n\n'
               b'data: {"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":2}}\n\n')
    assert not meter.complete
    meter.feed(b"data: [DONE]\n\n")
    assert meter.complete and (meter.in_tokens, meter.out_tokens, meter.events) == (7, 2, 3)


def test_the_usual_event_shape_and_the_full_walk_agree():
    """`event: NAME\\ndata: JSON` events are read without walking their lines; the same events in
    other shapes (no space after `data:`, two data lines) take the walk: the counts must agree,
    and the fast path must not learn signatures the walk would not."""
    from proxy.core.sse import SseMeter
    start = b'{"type":"message_start","message":{"usage":{"input_tokens":5,"cache_read_input_tokens":2}}}'
    events = [(b"message_start", start), (b"ping", b'{"type":"ping"}'),
              (b"content_block_start", b'{"error":1,"content_block":{"type":"redacted_thinking","data":"R"}}'),
              (b"content_block_stop", b'{"content_block":{"type":"redacted_thinking","data":"Q"}}'),
              (b"content_block_delta", b'{"delta":{"type":"text_delta"},"redacted_thinking":1}'),
              (b"message_delta", b'{"type":"message_delta","usage":{"output_tokens":7}}'),
              (b"message_stop", b'{"type":"message_stop"}')]
    usual = b"".join(b"event: " + n + b"\ndata: " + d + b"\n\n" for n, d in events)
    walked = b"".join(b"event: " + n + b"\ndata:" + d + b"\n\n" for n, d in events)
    results = []
    for body in (usual, walked):
        meter = SseMeter()
        meter.feed(body)
        results.append((meter.events, meter.complete, meter.in_tokens, meter.out_tokens,
                        meter.cache_read_tokens, meter.signatures))
    assert results[0] == results[1] == (7, True, 5, 7, 2, ["Q"])


# --- the one SSE splitter (EventSplitter, parse_event, SseEvents, events_of) ---------------------

RAW = (b"event: message_start\ndata: {\"a\": 1}\n\n: a comment\n\n"
       b"data: line one\ndata:line two\n\nid: 7\nretry: 10\n\nevent: ping\n\n")


def _pairs(events: list[Event]) -> list[tuple[str, str]]:
    """(name, data) of the events that carry data, as the stream converters read them."""
    return [(e.name.decode("utf-8", "replace"), e.data.decode("utf-8", "replace"))
            for e in events if e.data is not None]


def test_the_reader_pairs_event_names_with_joined_data_lines_and_skips_the_rest():
    assert _pairs(SseEvents().feed(RAW)) == [("message_start", '{"a": 1}'), ("", "line one\nline two")]
    assert SseEvents().feed(RAW) == [Event(b"message_start", b'{"a": 1}'), Event(b"", None),
                                     Event(b"", b"line one\nline two"), Event(b"", None, b"7"),
                                     Event(b"ping", None)]


@pytest.mark.parametrize("size", [1, 2, 5, 13])
def test_the_reader_gives_the_same_pairs_in_any_chunking_and_with_crlf_or_cr(size):
    for raw in (RAW, RAW.replace(b"\n", b"\r\n"), RAW.replace(b"\n", b"\r")):
        reader = SseEvents()
        events = [e for i in range(0, len(raw), size) for e in reader.feed(raw[i:i + size])]
        assert events == SseEvents().feed(RAW)


def test_the_reader_keeps_a_partial_event_until_its_blank_line():
    reader = SseEvents()
    assert reader.feed(b"event: e\ndata: {\"x\"") == []
    assert reader.feed(b": 2}\n") == []
    assert _pairs(reader.feed(b"\n")) == [("e", '{"x": 2}')]
    assert _pairs(reader.feed("data: caf\u00e9 \xff\n\n".encode("latin-1"))) == [("", "caf\ufffd \ufffd")]


def test_the_splitter_gives_the_last_event_when_told_the_stream_ended():
    split = EventSplitter()
    assert split.feed(b"data: 1\n\ndata: 2\n") == [b"data: 1"]
    assert split.end() == [b"data: 2"] and split.end() == []
    assert events_of(b"\n\n\r\n: c\r\rdata: [DONE]") == [Event(b"", None), Event(b"", b"[DONE]")]
    assert events_of([b"data: a\r", b"\n\r", b"\ndata: b\r"]) == [Event(b"", b"a"), Event(b"", b"b")]


def test_parse_event_reads_fields_as_the_spec_does():
    assert parse_event(b"event:  two spaces \ndata\ndata:  x\n:c\nid: 1\0\nid: 2\nother: y") == \
        Event(b" two spaces ", b"\n x", b"2")
    assert parse_event(b"data: {\"a\":\ndata: 1}") == Event(b"", b'{"a":\n1}')


def _spec_events(body: bytes) -> list[Event]:
    """The spec's reading of a whole body, line by line (an independent reference)."""
    lines = re.split(rb"\r\n|\r|\n", body)
    out, block = [], []
    for line in lines[:-1] + ([lines[-1]] if lines[-1] else []):
        if line:
            block.append(line)
        elif block:
            out.append(parse_event(b"\n".join(block)))
            block = []
    if block:
        out.append(parse_event(b"\n".join(block)))
    return out


_TEXT = st.text(alphabet="ab xé🙂\"\\", max_size=12)
_SIG = st.text(alphabet="ABCxyz09+/=", min_size=1, max_size=20)


def _logical_events():
    """(event name or None, data object or literal text) as Anthropic and OpenAI streams send them."""
    n = st.integers(0, 10_000)
    return st.one_of(
        st.builds(lambda i, c: ("message_start", {"type": "message_start", "message": {
            "id": "m", "usage": {"input_tokens": i, "cache_read_input_tokens": c}}}), n, n),
        st.just(("content_block_start", {"type": "content_block_start", "index": 0,
                                         "content_block": {"type": "text", "text": ""}})),
        st.builds(lambda s: ("content_block_start", {"type": "content_block_start", "index": 1,
                                                     "content_block": {"type": "redacted_thinking",
                                                                       "data": s}}), _SIG),
        st.just(("ping", {"type": "ping"})),
        st.builds(lambda t: ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                     "delta": {"type": "text_delta", "text": t}}), _TEXT),
        st.builds(lambda s: ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                     "delta": {"type": "signature_delta",
                                                               "signature": s}}), _SIG),
        st.just(("content_block_stop", {"type": "content_block_stop", "index": 0})),
        st.builds(lambda o: ("message_delta", {"type": "message_delta", "delta": {},
                                               "usage": {"output_tokens": o}}), n),
        st.just(("message_stop", {"type": "message_stop"})),
        st.sampled_from(["overloaded_error", "api_error"]).map(
            lambda t: ("error", {"type": "error", "error": {"type": t, "message": "busy"}})),
        st.builds(lambda t: (None, {"choices": [{"index": 0, "delta": {"content": t}}]}), _TEXT),
        st.builds(lambda p, c: (None, {"choices": [], "usage": {"prompt_tokens": p,
                                                                "completion_tokens": c}}), n, n),
        st.just((None, "[DONE]")),
        st.just(("comment", None)),
    )


@st.composite
def _streams(draw):
    """A stream's bytes under random conventions, and random cuts of it."""
    eol = draw(st.sampled_from([b"\n", b"\r\n", b"\r"]))
    parts = []
    for name, obj in draw(st.lists(_logical_events(), max_size=12)):
        if name == "comment":
            lines = [b": keep-alive"]
        else:
            text = obj if isinstance(obj, str) else json.dumps(obj, ensure_ascii=False,
                                                               separators=(",", ":"))
            pieces = [text]
            if draw(st.booleans()) and "," in text:  # the JSON over two data lines (cut at a comma)
                at = text.index(",") + 1
                pieces = [text[:at], text[at:]]
            space = draw(st.sampled_from(["data: ", "data:"]))
            lines = [(space + p).encode() for p in pieces]
            if name:
                lines.insert(0, b"event: " + name.encode())
            if draw(st.booleans()):
                lines.insert(draw(st.integers(0, len(lines))), b"id: 42")
            if draw(st.booleans()):
                lines.insert(draw(st.integers(0, len(lines))), b": note")
        parts.append(eol.join(lines) + eol * draw(st.integers(2, 4)))
    body = b"".join(parts)
    cuts = sorted(draw(st.lists(st.integers(0, len(body)), max_size=8)))
    chunks = [body[a:b] for a, b in zip([0] + cuts, cuts + [len(body)], strict=True)]
    return body, chunks


_ACCOUNTED = (b"message_start", b"message_delta", b"message_stop", b"error")


def _plain_meter(events: list[bytes]) -> tuple:
    """What the meter should see, read from the splitter's events with parse_event, no fast path."""
    seen = {"events": 0, "complete": False, "in": None, "out": None, "cache_read": None,
            "error_type": None, "signatures": []}

    def usage(u, fields=(("input_tokens", "in"), ("output_tokens", "out"),
                         ("cache_read_input_tokens", "cache_read"))):
        for field, key in fields:
            if isinstance((u or {}).get(field), int):
                seen[key] = u[field]

    for block in events:
        if not block.strip():
            continue
        seen["events"] += 1
        event = parse_event(block)
        name, data = event.name.strip(), (event.data or b"").strip()
        try:
            obj = json.loads(data) if data and data != b"[DONE]" else {}
        except ValueError:
            obj = {}
        if name == b"content_block_delta":
            if (obj.get("delta") or {}).get("type") == "signature_delta":
                seen["signatures"].append(obj["delta"]["signature"])
        elif name and name not in _ACCOUNTED:
            if (obj.get("content_block") or {}).get("type") == "redacted_thinking":
                seen["signatures"].append(obj["content_block"]["data"])
        elif data == b"[DONE]":
            seen["complete"] = True
        elif "type" not in obj and isinstance(obj.get("usage"), dict):
            usage({"input_tokens": obj["usage"].get("prompt_tokens"),
                   "output_tokens": obj["usage"].get("completion_tokens")})
        elif obj.get("type") == "message_start":
            usage(obj["message"]["usage"])
        elif obj.get("type") == "message_delta":
            usage(obj["usage"])
        elif obj.get("type") == "message_stop":
            seen["complete"] = True
        elif obj.get("type") == "error":
            seen["error_type"] = obj["error"]["type"]
    return tuple(seen.values())


@settings(max_examples=400, deadline=None, derandomize=True, database=None)
@given(_streams())
def test_the_splitter_and_the_meter_see_the_same_events_in_any_chunking(stream):
    body, chunks = stream
    split = EventSplitter()
    events = [e for c in chunks for e in split.feed(c)]
    assert [parse_event(e) for e in events + split.end()] == _spec_events(body) == events_of(chunks)
    meter = SseMeter()
    for c in chunks:
        meter.feed(c)
    assert meter.bytes == len(body)
    assert (meter.events, meter.complete, meter.in_tokens, meter.out_tokens, meter.cache_read_tokens,
            meter.error_type, meter.signatures) == _plain_meter(events)


def _fed_in(meter_or_splitter, body: bytes, size: int) -> float:
    import time
    feed = meter_or_splitter.feed
    t0 = time.perf_counter()
    for i in range(0, len(body), size):
        feed(body[i:i + size])
    return time.perf_counter() - t0


@pytest.mark.parametrize("total, chunk", [(20 * 1024 * 1024, 16 * 1024), (2 * 1024 * 1024, 64)])
def test_one_huge_line_costs_no_more_than_as_many_bytes_of_small_lines(total, chunk):
    """The meter's cost is linear in the stream's bytes however the lines are split: an event
    still open is not re-joined and re-scanned with every chunk (it was: quadratic)."""
    huge = b"event: content_block_delta\ndata: " + b"x" * total + b"\n\n"
    delta = b'event: content_block_delta\ndata: {"type":"content_block_delta","delta":{}}\n\n'
    small = delta * (len(huge) // len(delta) + 1)
    t_small = t_huge = float("inf")
    for _ in range(3):  # interleaved, the best of three each: a busy machine slows both alike
        meter_huge, meter_small = SseMeter(), SseMeter()
        t_small = min(t_small, _fed_in(meter_small, small, chunk))
        t_huge = min(t_huge, _fed_in(meter_huge, huge, chunk))
        assert meter_huge.events == 1 and meter_huge.bytes == len(huge)
        assert meter_small.events == len(small) // len(delta)
    # (quadratic, the 2 MB line took 30 s against 0.1 s of small lines)
    assert t_huge < 3 * t_small + 0.05, (t_huge, t_small)


def test_the_splitter_joins_an_open_event_once():
    """Op count, not time: however many pieces an event came in, it is joined when it ends."""
    splitter = EventSplitter()
    for _ in range(10_000):
        assert splitter.split(b"data: abc") == []
    assert len(splitter._parts) == 10_000 and splitter.pending
    events = splitter.split(b"\n\nevent: next")
    assert events == [b"data: abc" * 10_000] and splitter._parts == [b"event: next"]
    # a blank line cut between chunks, with CR line ends also cut between them
    assert splitter.split(b"\r") == [] and splitter.split(b"\n\r") == [b"event: next"]
    assert not splitter.pending and splitter.end() == []
