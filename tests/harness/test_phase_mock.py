"""The phase mock: each action at its phase, over HTTP/1.1 and HTTP/2, and what it counts."""
import json
import socket
import ssl

import httpx
import pytest

from harness.phase_mock import PhaseMock

pytestmark = pytest.mark.quick


def _body(nonce: str, stream: bool = False) -> bytes:
    return json.dumps({"model": "claude-sonnet-4-5", "stream": stream, "max_tokens": 5,
                       "messages": [{"role": "user", "content": f"hi {nonce}"}]}).encode()


@pytest.fixture(scope="module")
def plain():
    with PhaseMock() as mock:
        yield mock


@pytest.fixture(scope="module")
def tls():
    with PhaseMock(tls=True) as mock:
        yield mock


@pytest.fixture(autouse=True)
def _fresh(request):
    for name in ("plain", "tls"):
        if name in request.fixturenames:
            request.getfixturevalue(name).reset()


def test_ok_answers_json_and_sse_and_ends_the_connection(plain):
    with httpx.Client(trust_env=False, timeout=5) as client:
        one = client.post(plain.base_url + "/v1/messages", content=_body("nonce-a1"))
        two = client.post(plain.base_url + "/v1/messages", content=_body("nonce-b2", stream=True))
    assert one.status_code == 200 and one.json()["type"] == "message"
    assert two.headers["content-type"] == "text/event-stream" and b"message_stop" in two.content
    assert one.headers["connection"] == "close"
    assert (plain.copies("nonce-a1"), plain.copies("nonce-b2")) == (1, 1)
    plain.wait_for(lambda: plain.closed == 2, what="both connections ended")
    assert plain.connections == 2 and plain.partials == 0


def test_keep_leaves_the_connection_open_until_close_idle(plain):
    plain.plan("keep", "keep")
    with httpx.Client(trust_env=False, timeout=5) as client:
        for nonce in ("nonce-c1", "nonce-c2"):
            assert client.post(plain.base_url + "/x", content=_body(nonce)).status_code == 200
        assert plain.connections == 1 and plain.open_connections() == 1
        plain.wait_for(lambda: plain.idle_connections() == 1, what="the kept connection idle")
        assert plain.close_idle() == 1
        plain.wait_for(lambda: plain.open_connections() == 0, what="the idle connection closed")
    assert plain.close_idle() == 0


def test_refuse_and_each_request_phase_over_http1(plain):
    plain.plan("refuse", "mid_write", "after_write", "mid_answer", "busy")
    with socket.create_connection(("127.0.0.1", plain.port), timeout=5) as sock:
        assert sock.recv(10) == b""  # refused: closed at once
    with httpx.Client(trust_env=False, timeout=5) as client:
        for _ in range(3):  # mid_write, after_write, mid_answer
            with pytest.raises(httpx.TransportError):
                client.post(plain.base_url + "/x", content=_body("nonce-d1"))
        busy = client.post(plain.base_url + "/x", content=_body("nonce-d1"))
    assert busy.status_code == 429 and busy.headers["retry-after-ms"] == "1"
    assert [r.action for r in plain.requests] == ["mid_write", "after_write", "mid_answer", "busy"]
    assert plain.copies("nonce-d1") == 3 and plain.partials == 1  # mid_write read only the head
    assert plain.pending == []


def test_a_head_takes_nothing_from_the_plan(plain):
    plain.plan("after_write")
    with httpx.Client(trust_env=False, timeout=5) as client:
        assert client.head(plain.base_url + "/").status_code == 200
    assert plain.pending == ["after_write"]
    plain.reset()


def test_tls_close_then_http2_and_http1_by_alpn(tls):
    tls.plan("tls_close")
    context = ssl.create_default_context(cafile=tls.ca_path)
    with socket.create_connection(("127.0.0.1", tls.port), timeout=5) as raw:
        with pytest.raises((ssl.SSLError, ConnectionError)):
            context.wrap_socket(raw, server_hostname="127.0.0.1")
    assert tls.handshakes == 0
    with httpx.Client(trust_env=False, timeout=5, verify=context, http2=True) as client:
        h2 = client.post(tls.base_url + "/v1/messages", content=_body("nonce-e1", stream=True))
    with httpx.Client(trust_env=False, timeout=5, verify=context) as client:
        h1 = client.post(tls.base_url + "/v1/messages", content=_body("nonce-e2"))
    assert h2.http_version == "HTTP/2" and b"message_stop" in h2.content
    assert h1.http_version == "HTTP/1.1" and h1.json()["type"] == "message"
    assert [r.http_version for r in tls.requests] == ["2", "1.1"]
    assert tls.copies("nonce-e1") == tls.copies("nonce-e2") == 1 and tls.handshakes == 2


def test_each_request_phase_over_http2(tls):
    tls.plan("mid_write", "after_write", "mid_answer", "keep")
    context = ssl.create_default_context(cafile=tls.ca_path)
    with httpx.Client(trust_env=False, timeout=5, verify=context, http2=True) as client:
        for _ in range(3):
            with pytest.raises(httpx.TransportError):
                client.post(tls.base_url + "/x", content=_body("nonce-f1", stream=True))
        kept = client.post(tls.base_url + "/x", content=_body("nonce-f2"))
        assert kept.http_version == "HTTP/2" and tls.close_idle() == 1
    assert [r.action for r in tls.requests] == ["mid_write", "after_write", "mid_answer", "keep"]
    assert tls.copies("nonce-f1") == 2 and tls.partials == 1 and tls.copies("nonce-f2") == 1


def test_an_unknown_action_is_refused(plain):
    with pytest.raises(ValueError, match="unknown"):
        plain.plan("explode")
