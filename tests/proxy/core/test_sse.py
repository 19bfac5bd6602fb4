import json

import pytest

from proxy.core.sse import SseMeter, error_event, tokens_from_message

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
