"""What both stream converters share (proxy.core.convert.framing): SSE bytes in any chunking read
(by proxy.core.sse's reader: its tests are in tests/proxy/core/test_sse.py), frames written, and the
one way a stream finishes. The moved tests drive it through OpenAIToAnthropicStream, a converter built
on it; the others drive it directly."""
import json

import pytest

from proxy.core.convert.framing import INCOMPLETE, Converter, loads_object, sse
from proxy.core.convert.streams import OpenAIToAnthropicStream
from tests.proxy.core.convert.frames import sse_events

pytestmark = pytest.mark.quick


def _loose_events(out: bytes) -> list[tuple[str | None, str]]:
    return sse_events(out, strict=False)




def test_last_event_without_trailing_blank_line_is_still_read():
    converter = OpenAIToAnthropicStream("m")
    out = converter.feed(b'data: {"id":"c","choices":[{"index":0,"delta":{"content":"hi"},'
                         b'"finish_reason":"stop"}]}')
    assert out == b""
    out = converter.finish()
    assert converter.complete and converter.message["content"] == [{"type": "text", "text": "hi"}]
    assert out.endswith(b'event: message_stop\ndata: {"type":"message_stop"}\n\n')


def test_empty_upstream_stream_ends_with_an_error_not_silence():
    converter = OpenAIToAnthropicStream("m")
    out = converter.finish()
    assert not converter.complete
    assert _loose_events(out) == [("error", json.dumps(
        {"type": "error", "error": {"type": "api_error",
                                    "message": "upstream stream ended before the answer was complete"}},
        separators=(",", ":")))]


def test_unparsable_lines_are_skipped():
    converter = OpenAIToAnthropicStream("m")
    raw = (b": keep-alive\n\ndata: {not json\n\n"
           b'data: {"id":"c","choices":[{"index":0,"delta":{"content":"ok"},"finish_reason":"stop"}]}\n\n'
           b"data: [DONE]\n\n")
    converter.feed(raw)
    assert converter.complete and converter.message["content"] == [{"type": "text", "text": "ok"}]


def test_sse_writes_a_named_or_unnamed_frame_as_compact_json_or_text():
    assert sse("ping", {"type": "ping", "n": [1, 2]}) == \
        b'event: ping\ndata: {"type":"ping","n":[1,2]}\n\n'
    assert sse(None, "[DONE]") == b"data: [DONE]\n\n"
    assert sse("", {"é": "✓"}) == 'data: {"é":"✓"}\n\n'.encode()


def test_loads_object_is_a_dict_or_none():
    assert loads_object('{"a": [1]}') == {"a": [1]}
    assert [loads_object(x) for x in ("[1]", "3", '"s"', "{not json", "")] == [None] * 5


class Echo(Converter):
    """The smallest converter: each JSON object's `say` goes out; `{"end": true}` finishes it."""

    def __init__(self) -> None:
        super().__init__()
        self.finished = False
        self.failures: list[str] = []

    def _data(self, data: str) -> None:
        obj = loads_object(data) or {}
        if obj.get("end"):
            self.finished = True
            self._end()
        elif "say" in obj:
            self._out.append(obj["say"].encode())

    def _answer_finished(self) -> bool:
        return self.finished

    def _end(self) -> None:
        self._out.append(b"<end>")
        self.complete = self._ended = True

    def _fail(self, message: str, error_type: str = "api_error") -> None:
        self.failures.append(message)
        self.error = message
        self._out.append(b"<fail>")
        self._ended = True


def test_feed_hands_out_what_is_ready_and_nothing_after_the_end():
    c = Echo()
    assert c.feed(b'data: {"say": "a"}\n\ndata: {"say": "b"}\n\ndata: {"sa') == b"ab"
    assert c.feed(b'y": "c"}\n\ndata: {"end": true}\n\ndata: {"say": "late"}\n\n') == b"c<end>"
    assert c.feed(b'data: {"say": "later"}\n\n') == b"" and c.finish() == b""
    assert c.complete and c.error is None and c.failures == []


def test_finish_reads_the_last_event_then_ends_or_fails_once():
    ended = Echo()
    ended.feed(b'data: {"end": true}')  # no blank line yet: finish() supplies it
    assert ended.finish() == b"<end>" and ended.complete
    cut = Echo()
    assert cut.feed(b'data: {"say": "x"}\n\n') == b"x"
    assert cut.finish() == b"<fail>" and cut.failures == [INCOMPLETE]
    assert cut.finish("again") == b"" and cut.failures == [INCOMPLETE]


def test_finish_with_an_error_fails_even_an_answer_that_looked_finished():
    c = Echo()
    c.finished = True  # the answer is whole, but the relay says the upstream broke
    assert c.finish("upstream reset") == b"<fail>" and c.error == "upstream reset"
    assert not c.complete


def test_what_the_last_event_gives_is_relayed_and_the_stream_ends_once():
    # finish() reads the event that lacked its blank line: its output goes out with the ending
    said = Echo()
    assert said.feed(b'data: {"say": "a"}') == b""
    assert said.finish() == b"a<fail>" and said.failures == [INCOMPLETE]
    converter = OpenAIToAnthropicStream("m")
    converter.feed(b'data: {"id":"c","choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n'
                   b'data: {"id":"c","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n')
    out = converter.feed(b"data: [DONE]") + converter.finish()
    names = [name for name, _ in _loose_events(out)]
    assert names == ["content_block_stop", "message_delta", "message_stop"] and converter.complete
