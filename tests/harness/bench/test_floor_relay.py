"""The bench's floor (harness.bench.floor_relay): the bare relay, run as the bench runs it, in front
of a recording upstream on loopback. It sends on the path, the body and the few headers it names;
the status, content-type and body come back, a stream as it streams."""
import http.server
import json
import subprocess
import sys
import threading
import urllib.error
import urllib.request

import pytest

from harness.bench.floor_relay import FORWARDED, main
from harness.bench.procs import read_announce
from harness.shim import PROJECT_ROOT, clean_env

SSE = [b"event: message_start\ndata: {}\n\n", b"event: message_stop\ndata: {}\n\n"]


class _Upstream(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list = []

    def do_POST(self):  # noqa: N802 - the stdlib's name
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        self.seen.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
        if self.path.endswith("/stream"):
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            for event in SSE:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            return
        answer = json.dumps({"error": {"type": "rate_limit_error"}}).encode()
        self.send_response(429)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


@pytest.fixture
def relay():
    """(relay URL, what the upstream saw): the floor as a child process, the upstream in a thread."""
    _Upstream.seen = []
    upstream = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    thread = threading.Thread(target=upstream.serve_forever, daemon=True)
    thread.start()
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness.bench.floor_relay", "--upstream",
         f"http://127.0.0.1:{upstream.server_address[1]}/"],
        cwd=PROJECT_ROOT, env=clean_env(), stdout=subprocess.PIPE)
    try:
        announced = read_announce(proc, 15, "floor")
        assert announced["event"] == "listening" and announced["pid"] == proc.pid
        yield f"http://127.0.0.1:{announced['port']}", _Upstream.seen
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()
        upstream.shutdown()
        upstream.server_close()


def _post(url: str, body: bytes, headers: dict) -> tuple[int, str, bytes]:
    req = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - loopback only
            return resp.status, resp.headers["content-type"], resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["content-type"], exc.read()


def test_the_relay_sends_path_body_and_only_its_named_headers(relay):
    url, seen = relay
    body = b'{"model": "claude-sonnet-4-5", "max_tokens": 5}'
    status, ctype, answer = _post(url + "/v1/messages", body, {
        "content-type": "application/json", "x-api-key": "bench-key", "anthropic-version": "2023-06-01",
        "x-mock-deltas": "3", "x-not-forwarded": "dropped", "cookie": "dropped"})
    assert (status, ctype) == (429, "application/json")
    assert json.loads(answer) == {"error": {"type": "rate_limit_error"}}
    [(path, headers, got)] = seen
    assert (path, got) == ("/v1/messages", body)
    assert {k: headers[k] for k in FORWARDED if k in headers} == {
        "content-type": "application/json", "x-api-key": "bench-key",
        "anthropic-version": "2023-06-01", "x-mock-deltas": "3"}
    assert "x-not-forwarded" not in headers and "cookie" not in headers


def test_a_stream_comes_back_byte_for_byte(relay):
    url, seen = relay
    status, ctype, answer = _post(url + "/v1/stream", b"{}", {"content-type": "application/json"})
    assert (status, ctype, answer) == (200, "text/event-stream", b"".join(SSE))
    assert seen[0][0] == "/v1/stream"


@pytest.mark.quick
def test_the_upstream_is_required(capsys):
    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code == 2 and "--upstream" in capsys.readouterr().err


class _TlsUpstream(_Upstream):
    alpn: list = []

    def do_POST(self):  # noqa: N802
        self.alpn.append(self.connection.selected_alpn_protocol())
        super().do_POST()


@pytest.fixture
def tls_upstream(tmp_path):
    """(https URL, CA path, ALPN protocols chosen): a TLS upstream offering h2 and http/1.1."""
    import ssl

    from harness.tls_mock import throwaway_certs
    ca, cert, key = throwaway_certs(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    context.set_alpn_protocols(["h2", "http/1.1"])
    _TlsUpstream.seen, _TlsUpstream.alpn = [], []
    upstream = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _TlsUpstream)
    upstream.socket = context.wrap_socket(upstream.socket, server_side=True)
    thread = threading.Thread(target=upstream.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{upstream.server_address[1]}", ca, _TlsUpstream.alpn
    finally:
        upstream.shutdown()
        upstream.server_close()


def _floor(*args: str):
    proc = subprocess.Popen([sys.executable, "-m", "harness.bench.floor_relay", *args],
                            cwd=PROJECT_ROOT, env=clean_env(), stdout=subprocess.PIPE)
    return proc, f"http://127.0.0.1:{read_announce(proc, 15, 'floor')['port']}"


def _stop(proc) -> None:
    proc.terminate()
    proc.wait(10)
    proc.stdout.close()


def test_with_ca_the_relay_trusts_that_ca_and_speaks_http11_over_tls(tls_upstream):
    url, ca, alpn = tls_upstream
    proc, relay_url = _floor("--upstream", url, "--ca", ca)
    try:
        status, ctype, answer = _post(relay_url + "/v1/stream", b"{}", {"content-type": "application/json"})
    finally:
        _stop(proc)
    assert (status, ctype, answer) == (200, "text/event-stream", b"".join(SSE))
    assert alpn == ["http/1.1"]  # offered http/1.1 only, though the upstream prefers h2


def test_without_the_ca_the_upstream_certificate_is_refused(tls_upstream):
    url, _ca, alpn = tls_upstream
    proc, relay_url = _floor("--upstream", url)
    try:
        status, _, _ = _post(relay_url + "/v1/stream", b"{}", {"content-type": "application/json"})
    finally:
        _stop(proc)
    assert status == 500 and alpn == []  # certifi's roots do not know the throwaway CA


@pytest.mark.quick
def test_the_client_context_verifies_against_the_ca(tmp_path):
    import ssl

    from harness.bench.floor_relay import client_context
    from harness.tls_mock import throwaway_certs
    ca, _, _ = throwaway_certs(tmp_path)
    context = client_context(ca)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert len(context.get_ca_certs()) == 1
