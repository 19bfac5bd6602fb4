"""The Anthropic mock upstream: replies, byte-exact SSE, recording, faults, control API and CLI."""
import json
import os
import selectors
import signal
import ssl
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from harness.mock_faults import SPLIT_UTF8_SUFFIX, Fault, parse_fault
from harness.mock_upstream import MockUpstream
from harness.mock_wire import message_json, split_text, sse_events

pytestmark = pytest.mark.quick

ROOT = Path(__file__).resolve().parents[2]
MODEL = "claude-sonnet-4-5"


@pytest.fixture(scope="module")
def server():
    with MockUpstream("anthropic") as mock:
        yield mock


@pytest.fixture
def mock(server):
    server.reset()
    yield server
    server.reset()


@pytest.fixture
def client():
    with httpx.Client(trust_env=False, timeout=5) as c:
        yield c


def _body(prompt="hi", stream=False) -> bytes:
    return json.dumps({"model": MODEL, "max_tokens": 16, "stream": stream,
                       "messages": [{"role": "user", "content": prompt}]}).encode()


def _events(raw: bytes) -> list[tuple[str, str]]:
    out = []
    for block in raw.decode().split("\n\n"):
        if block:
            name, data = block.split("\n")
            out.append((name.removeprefix("event: "), data.removeprefix("data: ")))
    return out


ECHO = "Reply with exactly: A2S_OK and nothing else."


def test_non_stream_reply_echoes_the_requested_text(mock, client):
    body = _body(ECHO)
    resp = client.post(f"{mock.base_url}/v1/messages", content=body,
                       headers={"content-type": "application/json"})
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("application/json")
    assert resp.headers["request-id"].startswith("req_mock_")
    reply = resp.json()
    assert reply == message_json(MODEL, "A2S_OK", len(body) // 4, 1)
    assert reply["id"].startswith("msg_mock_") and reply["content"][0]["text"] == "A2S_OK"
    [call] = mock.wait_for_calls(1)
    assert call.status == 200 and call.finished and call.sent == resp.content


def test_default_reply_and_text_blocks(mock, client):
    blocks = {"model": MODEL, "messages": [
        {"role": "user", "content": [{"type": "text", "text": "x"}, {"type": "text", "text": ECHO}]}]}
    assert client.post(f"{mock.base_url}/v1/messages", json=blocks).json()["content"][0]["text"] == "A2S_OK"
    plain = client.post(f"{mock.base_url}/v1/message", content=_body("hello")).json()
    assert plain["content"][0]["text"] == "Hello from mock anthropic"
    assert plain["usage"]["output_tokens"] == 4


def test_stream_is_byte_exact_and_ordered(mock, client):
    body = _body(ECHO, stream=True)
    with client.stream("POST", f"{mock.base_url}/v1/messages", content=body,
                       headers={"x-mock-deltas": "5"}) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        raw = b"".join(resp.iter_raw())
    expected = sse_events(MODEL, "A2S_OK", 5, len(body) // 4)
    assert raw == b"".join(expected)
    names = [name for name, _ in _events(raw)]
    assert names == ["message_start", "content_block_start", "ping", *["content_block_delta"] * 5,
                     "content_block_stop", "message_delta", "message_stop"]
    data = [json.loads(d) for _, d in _events(raw)]
    assert "".join(d["delta"]["text"] for d in data[3:8]) == "A2S_OK"
    assert data[-2]["usage"] == {"output_tokens": 5}
    [call] = mock.wait_for_calls(1)
    assert call.sent == raw and call.writes == len(expected) and call.finished


def test_split_text_shapes():
    assert split_text("Hello from mock anthropic", 4) == ["Hello", " from", " mock", " anthropic"]
    assert split_text("abcdef", 3) == ["ab", "cd", "ef"]
    assert split_text("ab", 4) == ["a", "b", " x", " x"]
    assert split_text("ab", 0) == []


def test_zai_prefix_and_query(mock, client):
    resp = client.post(f"{mock.zai_base_url}/v1/messages?beta=true", content=_body(ECHO))
    assert resp.status_code == 200 and resp.json()["content"][0]["text"] == "A2S_OK"
    [call] = mock.wait_for_calls(1)
    assert call.path == "/api/anthropic/v1/messages" and call.query == {"beta": "true"}
    mock.assert_no_unexpected()


def test_root_answers_and_unknown_path_is_unexpected(mock, client):
    assert client.head(mock.base_url + "/").status_code == 200
    assert client.get(mock.base_url + "/").status_code == 200
    before = mock.probes
    assert client.head(mock.zai_base_url).status_code == 200
    assert mock.probes == before + 1 and mock.calls == []  # probes are counted, not model calls
    mock.assert_no_unexpected()
    resp = client.get(f"{mock.base_url}/v1/models")
    assert resp.status_code == 404 and resp.json()["error"]["type"] == "not_found_error"
    with pytest.raises(AssertionError, match="GET /v1/models"):
        mock.assert_no_unexpected()


def test_records_headers_and_body(mock, client):
    body = _body("hi")
    client.post(f"{mock.base_url}/v1/messages", content=body,
                headers=[("X-Api-Key", "k-1"), ("X-Multi", "a"), ("X-Multi", "b")])
    [call] = mock.wait_for_calls(1)
    assert (call.method, call.path, call.body) == ("POST", "/v1/messages", body)
    assert call.json == json.loads(body)
    assert call.headers["x-api-key"] == "k-1" and call.headers["x-multi"] == "a, b"
    assert call.fault is None


@pytest.mark.parametrize("status,etype", [(529, "overloaded_error"), (429, "rate_limit_error"),
                                          (502, "api_error")])
def test_status_fault_via_header(mock, client, status, etype):
    resp = client.post(f"{mock.base_url}/v1/messages", content=_body(stream=True),
                       headers={"x-mock-fault": f"status={status}"})
    assert resp.status_code == status
    assert resp.json() == {"type": "error", "error": {"type": etype, "message": "mock fault"}}
    assert (resp.headers.get("retry-after") == "1") == (status == 429)
    [call] = mock.wait_for_calls(1)
    assert call.fault == f"status={status}" and call.sent == resp.content


def test_status_fault_via_script_is_consumed_once(mock, client):
    mock.script("status=529")
    mock.script(text="custom")
    first = client.post(f"{mock.base_url}/v1/messages", content=_body())
    second = client.post(f"{mock.base_url}/v1/messages", content=_body())
    third = client.post(f"{mock.base_url}/v1/messages", content=_body())
    assert first.status_code == 529 and first.json()["error"]["type"] == "overloaded_error"
    assert second.json()["content"][0]["text"] == "custom"
    assert third.json()["content"][0]["text"] == "Hello from mock anthropic"
    mock.set_default("status=500")
    assert client.post(f"{mock.base_url}/v1/messages", content=_body()).status_code == 500


def test_reset_mid_stream_breaks_after_three_events(mock, client):
    body = _body(ECHO, stream=True)
    got = b""
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        with client.stream("POST", f"{mock.base_url}/v1/messages", content=body,
                           headers={"x-mock-fault": "reset_mid_stream;after=3"}) as resp:
            for chunk in resp.iter_raw():
                got += chunk
    assert got == b"".join(sse_events(MODEL, "A2S_OK", 1, len(body) // 4)[:3])
    [call] = mock.wait_until(lambda: mock.calls[0].sent == got)
    assert not call.finished and not call.client_disconnected


def test_reset_before_headers(mock, client):
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        client.post(f"{mock.base_url}/v1/messages", content=_body(),
                    headers={"x-mock-fault": "reset_before_headers"})
    [call] = mock.wait_for_calls(1)
    assert call.sent == b"" and not call.finished


@pytest.mark.parametrize("prompt,text", [
    ("Reply with exactly: caf\u00e9 \U0001F642 ok and nothing else.", "caf\u00e9 \U0001F642 ok"),
    ("hi", "Hello from mock anthropic" + SPLIT_UTF8_SUFFIX),
])
def test_split_utf8_still_decodes(mock, client, prompt, text):
    body = _body(prompt, stream=True)
    with client.stream("POST", f"{mock.base_url}/v1/messages", content=body,
                       headers={"x-mock-fault": "split_utf8"}) as resp:
        raw = b"".join(resp.iter_raw())
    events = sse_events(MODEL, text, len(text.split()), len(body) // 4)
    assert raw == b"".join(events)
    deltas = [json.loads(d)["delta"]["text"] for n, d in _events(raw) if n == "content_block_delta"]
    assert "".join(deltas) == text
    [call] = mock.wait_for_calls(1)
    assert call.fault == "split_utf8" and call.writes == len(events) + 1 and call.finished


def test_malformed_event_breaks_one_event_only(mock, client):
    with client.stream("POST", f"{mock.base_url}/v1/messages", content=_body(stream=True),
                       headers={"x-mock-fault": "malformed_event"}) as resp:
        raw = b"".join(resp.iter_raw())
    bad = []
    for name, data in _events(raw):
        try:
            json.loads(data)
        except ValueError:
            bad.append(name)
    assert bad == ["content_block_delta"]
    assert raw.endswith(b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n")


def test_stall_ends_when_the_client_leaves(mock, client):
    with client.stream("POST", f"{mock.base_url}/v1/messages", content=_body(stream=True),
                       headers={"x-mock-fault": "stall;seconds=30"}) as resp:
        assert next(resp.iter_raw()).startswith(b"event: message_start")
        assert not mock.calls[0].finished
    [call] = mock.wait_until(lambda: mock.calls[0].client_disconnected, timeout=3)
    assert not call.finished and call.fault == "stall;seconds=30"


def test_a_held_stream_goes_on_when_released_and_says_so(mock, client):
    from harness.probes import http_probe
    res = http_probe(mock.base_url, MODEL, "Reply with exactly: hi there and nothing else",
                     stream=True, extra_headers={"x-mock-fault": "hold;after=1;seconds=30"},
                     on_first_event=mock.release)  # only the first event came before the release
    assert res.ok and res.text == "hi there"
    [call] = mock.calls
    assert call.hold == "released" and call.finished and call.sent == res.raw


def test_a_hold_nobody_releases_expires_and_a_reset_ends_one(mock, client):
    with client.stream("POST", f"{mock.base_url}/v1/messages", content=_body(stream=True),
                       headers={"x-mock-fault": "hold;after=2;seconds=0"}) as resp:
        raw = b"".join(resp.iter_raw())
    assert raw.endswith(b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n")
    assert mock.calls[0].hold == "expired"
    with client.stream("POST", f"{mock.base_url}/v1/messages", content=_body(stream=True),
                       headers={"x-mock-fault": "hold;after=1;seconds=30"}) as resp:
        chunks = resp.iter_raw()
        assert next(chunks).startswith(b"event: message_start")
        mock.reset()  # (ends the hold as a stop would: not a release by the client)
        rest = b"".join(chunks)
    assert rest.endswith(b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n")


def test_wait_for_calls_times_out(mock):
    with pytest.raises(AssertionError, match="not met"):
        mock.wait_for_calls(1, timeout=0.05)


def test_control_api(mock, client):
    base = mock.base_url
    assert client.post(f"{base}/_mock/script", json={"fault": "status=503", "times": 2}).status_code == 200
    assert client.post(f"{base}/_mock/script", json={"fault": "nope"}).status_code == 400
    statuses = [client.post(f"{base}/v1/messages", content=_body()).status_code for _ in range(3)]
    assert statuses == [503, 503, 200]
    listed = client.get(f"{base}/_mock/calls").json()
    assert [c["status"] for c in listed] == [503, 503, 200] and listed[0]["fault"] == "status=503"
    assert len(mock.calls) == 3  # control calls are not recorded
    assert client.post(f"{base}/_mock/reset").status_code == 200
    assert mock.calls == [] and client.get(f"{base}/_mock/calls").json() == []


def test_bad_fault_header_is_a_400(mock, client):
    resp = client.post(f"{mock.base_url}/v1/messages", content=_body(), headers={"x-mock-fault": "boom"})
    assert resp.status_code == 400 and resp.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize("spec,fault", [
    ("status=529", Fault("status", status=529)),
    ("reset_mid_stream;after=3", Fault("reset_mid_stream", after=3)),
    ("stall", Fault("stall", seconds=5.0)),
    (" stall_before_headers ; seconds=0.5 ", Fault("stall_before_headers", seconds=0.5)),
    ("slow_drip;delay_ms=10", Fault("slow_drip", delay_ms=10)),
    ("split_utf8", Fault("split_utf8")),
    ("malformed_event", Fault("malformed_event")),
])
def test_parse_fault_accepts(spec, fault):
    assert parse_fault(spec) == fault
    assert parse_fault(fault.spec()) == fault


@pytest.mark.parametrize("spec", ["", "nope", "status=200", "status=abc", "status=529;x=1",
                                  "stall;seconds=-1", "stall;seconds=nan", "stall;foo=1", "stall;seconds",
                                  "reset_mid_stream;after=x", "split_utf8;x=1",
                                  "slow_drip;delay_ms=1;delay_ms=2"])
def test_parse_fault_rejects(spec):
    with pytest.raises(ValueError):
        parse_fault(spec)


def test_cli_announces_and_stops_on_sigterm():
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_PROXY": "127.0.0.1"}
    proc = subprocess.Popen([sys.executable, "-c", "import sys; from harness.mock_upstream import main; "
                             "sys.exit(main(['--name', 'zai']))"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT, env=env)
    try:
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            assert sel.select(timeout=10), "mock-upstream did not announce itself"
        line = json.loads(proc.stdout.readline())
        assert line["event"] == "listening" and line["name"] == "zai" and line["port"] > 0
        assert line["zai_url"] == line["url"] + "/api/anthropic"
        with httpx.Client(trust_env=False, timeout=5) as c:
            reply = c.post(f"{line['zai_url']}/v1/messages", content=_body()).json()
        assert reply["content"][0]["text"] == "Hello from mock zai"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


def test_thinking_is_signed_and_foreign_signatures_rejected(mock, client):
    body = {"model": MODEL, "max_tokens": 2048, "thinking": {"type": "enabled", "budget_tokens": 1024},
            "messages": [{"role": "user", "content": "hi"}]}
    reply = client.post(f"{mock.base_url}/v1/messages", json=body).json()
    assert [b["type"] for b in reply["content"]] == ["thinking", "text"]
    own = reply["content"][0]
    assert own["signature"].startswith("sig-anthropic-")
    followup = {**body, "messages": [*body["messages"], {"role": "assistant", "content": reply["content"]},
                                     {"role": "user", "content": "again"}]}
    assert client.post(f"{mock.base_url}/v1/messages", json=followup).status_code == 200
    foreign = dict(own, signature="sig-zai-0123")
    followup["messages"][1] = {"role": "assistant", "content": [foreign, reply["content"][1]]}
    rejected = client.post(f"{mock.base_url}/v1/messages", json=followup)
    assert rejected.status_code == 400
    assert "Invalid `signature` in `thinking` block" in rejected.json()["error"]["message"]
    streamed = client.post(f"{mock.base_url}/v1/messages", json={**body, "stream": True}).content
    assert b'"signature_delta"' in streamed and b'"index":1' in streamed


def test_tls_mock_serves_https_and_client_api_calls():
    mock = MockUpstream("tls", tls=True).start()
    try:
        ca = mock.ca_path
        assert mock.base_url.startswith("https://127.0.0.1:")
        with httpx.Client(verify=ssl.create_default_context(cafile=ca), trust_env=False) as c:
            body = {"model": MODEL, "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
            reply = c.post(f"{mock.base_url}/v1/messages", json=body)
            assert reply.status_code == 200 and reply.json()["type"] == "message"
            settings = c.get(f"{mock.base_url}/api/claude_code/settings")
            assert settings.status_code == 404 and settings.json()["type"] == "error"
        with pytest.raises(httpx.ConnectError):  # not trusted without the mock's CA
            httpx.get(mock.base_url + "/", trust_env=False)
        assert [c.path for c in mock.calls] == ["/v1/messages"]
        assert mock.client_api == ["/api/claude_code/settings"]
        mock.reset()
        assert mock.client_api == []
    finally:
        mock.stop()
    assert not Path(ca).exists() and mock.ca_path is None


@pytest.mark.parametrize("path", ["/v1/messages", "/v1/chat/completions"])
@pytest.mark.parametrize("body", [
    b'{"model": "m", "messages": -1}', b'{"model": "m", "messages": {"a": 1}}',
    b'{"model": "m", "messages": [{"role": "user", "content": 5}], "stream": true}',
])
def test_a_malformed_request_is_a_400_not_a_crash(mock, client, path, body):
    resp = client.post(f"{mock.base_url}{path}", content=body, headers={"content-type": "application/json"})
    assert resp.status_code in (200, 400), resp.text
    if resp.status_code == 400:
        assert "malformed request" in resp.text


def test_a_lone_surrogate_is_echoed_as_its_escape(mock, client):
    body = b'{"model": "m\\ud800", "max_tokens": 5, "messages": [{"role": "user", "content": "\\udfff"}]}'
    resp = client.post(f"{mock.base_url}/v1/messages", content=body,
                       headers={"content-type": "application/json"})
    assert resp.status_code == 200
    resp.content.decode("utf-8")
    assert resp.json()["model"] == "m\ud800"


def test_wire_variant_and_utf8_split_helpers():
    from harness.mock_wire import ends_mid_utf8, wire_variant
    events = [b"event: a\ndata: 1\n\n", b"event: b\ndata: 2\n\n"]
    out = wire_variant(events, crlf=True, comments=True)
    assert out == [b"event: a\r\ndata: 1\r\n\r\n", b": ping\r\n\r\n", b": ping\r\n\r\n",
                   b"event: b\r\ndata: 2\r\n\r\n"]
    assert wire_variant(events) == events
    assert ends_mid_utf8("caf\u00e9".encode()[:-1]) and not ends_mid_utf8("caf\u00e9".encode())
    assert ends_mid_utf8("\U0001F642".encode()[:3]) and not ends_mid_utf8(b"abc")


def test_repro_wire_streams_crlf_comments_and_a_split_character(client):
    with MockUpstream("anthropic", wire="repro") as mock:
        prompt = "Reply with exactly: caf\u00e9 ok and nothing else."
        with client.stream("POST", f"{mock.base_url}/v1/messages", content=_body(prompt, True)) as r:
            raw = b"".join(r.iter_raw())
        call = mock.calls[0]
        assert call.sent == raw and call.version == "1.1"
        assert b"\n" not in raw.replace(b"\r\n", b"") and b"\r\n: ping\r\n" in raw
        assert call.utf8_splits == 1 and call.finished
        from harness.probes import text_from_sse
        assert text_from_sse(raw) == "caf\u00e9 ok"  # the same answer
        # a fault keeps its own shape (no wire variant)
        with client.stream("POST", f"{mock.base_url}/v1/messages", content=_body(prompt, True),
                           headers={"x-mock-fault": "no_stop"}) as r:
            assert b"\r\n" not in b"".join(r.iter_raw())
    with pytest.raises(ValueError):
        MockUpstream("anthropic", wire="odd")
