import json

import pytest

from harness.bench.fast_mock import _dechunk, reply_parts

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
