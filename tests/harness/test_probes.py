import json
import socket
import threading

import pytest

from harness.mock_wire import sse_events
from harness.probes import ProbeResult, sdk_probe, text_from_message, text_from_sse

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


def test_an_sdk_stream_cut_inside_a_utf8_character_is_that_probe_s_error():
    events = sse_events("claude-sonnet-4-5", "caf\u00e9 au lait", 3, 10)
    cut = b"".join(events[:3]) + events[3][:events[3].index(b"\xc3") + 1]  # half of the \u00e9
    head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n"
    with socket.create_server(("127.0.0.1", 0)) as server:
        def answer():
            conn, _ = server.accept()
            with conn:  # the whole request is read first: unread bytes would make the close a reset
                got = b""
                while b"\r\n\r\n" not in got:
                    got += conn.recv(65536)
                top, _, body = got.partition(b"\r\n\r\n")
                length = int(top.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                while len(body) < length:
                    body += conn.recv(65536)
                conn.sendall(head + cut)
        thread = threading.Thread(target=answer)
        thread.start()
        res = sdk_probe(f"http://127.0.0.1:{server.getsockname()[1]}", "claude-sonnet-4-5",
                        stream=True, api_key="k", timeout=10)
        thread.join(10)
    assert not res.ok and res.error and res.error.startswith("UnicodeDecodeError")
