import json

import pytest

from harness.mock_wire import sse_events
from harness.probes import ProbeResult, text_from_message, text_from_sse

pytestmark = pytest.mark.quick


def test_text_from_sse_rebuilds_the_reply():
    raw = b"".join(sse_events("claude-haiku-4-5", "héllo wörld 🙂", 5, 10))
    assert text_from_sse(raw) == "héllo wörld 🙂"
    assert text_from_sse(raw.replace(b"\n", b"\r\n")) == "héllo wörld 🙂"
    assert text_from_sse(b"event: x\ndata: {broken\n\n") == ""


def test_text_from_message():
    body = {"content": [{"type": "text", "text": "a"}, {"type": "tool_use"}, {"type": "text", "text": "b"}]}
    assert text_from_message(json.loads(json.dumps(body))) == "ab"
    assert text_from_message(None) == ""


def test_result_ok_and_row():
    res = ProbeResult("http", "m", True, status=200, text="x" * 100)
    assert res.ok and len(res.row()["text"]) == 60 and res.row()["op"] == "stream"
    assert not ProbeResult("http", "m", False, status=200, error="boom").ok
    assert not ProbeResult("http", "m", False, status=529).ok
