import json

import pytest

from harness.bench.fast_mock import MockState, _dechunk, reply_parts

pytestmark = pytest.mark.quick


def test_dechunk_whole_and_partial():
    buf = bytearray(b"HEAD\r\n\r\n" + b"3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\nNEXT")
    body, used = _dechunk(buf, 8)
    assert body == b"abcde" and buf[used:] == b"NEXT"
    assert _dechunk(bytearray(b"3\r\nab"), 0) == (None, 0)


def test_replies_have_the_real_shapes():
    (msg,) = reply_parts(False, "m", False, 5)
    assert json.loads(msg)["type"] == "message" and b'"usage"' in msg
    events = reply_parts(False, "m", True, 50)
    assert sum(b"text_delta" in e for e in events) == 50 and b"message_stop" in events[-1]
    (chat,) = reply_parts(True, "m", False, 5)
    assert json.loads(chat)["object"] == "chat.completion"
    assert reply_parts(True, "m", True, 5)[-1] == b"data: [DONE]\n\n"


def test_every_answer_and_the_counters_come_from_one_state():
    state = MockState()
    h = {b"x-mock-deltas": b"3", b"x-mock-delay-ms": b"7"}
    stream = state.reply(b"POST", b"/api/anthropic/v1/messages", h, b'{"model":"m","stream":true}', "h2")
    assert (stream.status, stream.ctype, stream.stream, stream.delay) == (200, b"text/event-stream",
                                                                          True, 0.007)
    assert sum(b"text_delta" in p for p in stream.parts) == 3
    plain = state.reply(b"POST", b"/v1/messages", {}, b'{"model":"m"}', "h1-tls")
    assert (plain.status, plain.stream) == (200, False) and b'"usage"' in plain.parts[0]
    assert state.reply(b"POST", b"/v1/chat/completions", {}, b"{not json", "h1").status == 400
    assert state.reply(b"POST", b"/_bench/config", {}, b'{"deltas": 4, "delay_ms": 2}', "h1").status == 200
    assert (state.deltas, state.delay_ms) == (4, 2)
    assert state.reply(b"HEAD", b"/", {}, b"", "h2") == (200, b"text/plain", [b""], False, 0.0)
    assert state.reply(b"GET", b"/nope", {}, b"", "h1").status == 404
    state.handshakes = 2
    count = state.reply(b"GET", b"/_bench/count", {}, b"", "h1")
    assert json.loads(count.parts[0]) == state.counts() == {
        "calls": 3, "handshakes": 2, "tls_calls": 2, "h2_calls": 1,
        "by_kind": {"h2": 1, "h1-tls": 1, "h1": 1}}

