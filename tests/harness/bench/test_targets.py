"""The bench's processes (harness.bench.targets): the mock and the targets in front of it, the
model each target is asked for, and the small HTTP helpers the runner waits and counts with."""
import http.server
import json
import socket
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import pytest

from harness.bench.targets import (
    CONVERT_MODEL,
    PASSTHROUGH_MODEL,
    Ccp,
    CcpPg,
    Direct,
    FastMock,
    Floor,
    Proc,
    Target,
    _AblatedShim,
    free_port,
    http_json,
    wait_http,
)
from harness.shim import wait_until

quick = pytest.mark.quick  # (the tests that start processes are not `quick`)


def _post(url: str, model: str, path: str = "/v1/messages") -> tuple[int, dict]:
    body = json.dumps({"model": model, "max_tokens": 5,
                       "messages": [{"role": "user", "content": "hi"}]}).encode()
    req = urllib.request.Request(url + path, data=body, method="POST",
                                 headers={"content-type": "application/json", "x-api-key": "k",
                                          "anthropic-version": "2023-06-01"})
    with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - loopback only
        return resp.status, json.loads(resp.read())


@quick
def test_each_target_is_asked_for_the_model_it_can_serve():
    assert Target("any").model(convert=False) == PASSTHROUGH_MODEL
    assert Target("any").model(convert=True) == CONVERT_MODEL == Ccp().model(convert=True)
    assert Direct().model(convert=True) == Floor().model(convert=True) == PASSTHROUGH_MODEL
    with pytest.raises(NotImplementedError):
        Target("any").start("http://127.0.0.1:1", None)


@quick
def test_direct_is_no_process_at_all(tmp_path):
    direct = Direct()
    direct.start("http://127.0.0.1:9", tmp_path)
    assert (direct.name, direct.url, direct.pid, direct.cpu_s(), direct.peak_rss_mb()) == \
        ("direct", "http://127.0.0.1:9", None, None, None)
    direct.stop()  # nothing to stop: no error


@quick
def test_free_port_is_a_port_nobody_listens_on():
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))  # still free


@quick
def test_the_ablated_shim_runs_serve_under_the_ablation_module(tmp_path):
    command = _AblatedShim(("store", "log"), tmp_path, port=5)._command()
    assert command[:4] == [sys.executable, "-m", "harness.bench.ablate", "store,log"]
    assert command[4:] == ["serve", "--host", "127.0.0.1", "--port", "5"]


class _Answer(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        status = 404 if self.path == "/missing" else 200
        body = b"" if self.path == "/empty" else json.dumps({"got": "GET"}).encode()
        self.send_response(status)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):  # noqa: N802
        data = self.rfile.read(int(self.headers["content-length"]))
        body = json.dumps({"got": json.loads(data), "ctype": self.headers["content-type"]}).encode()
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@quick
def test_http_json_gets_without_a_body_and_posts_with_one(server):
    assert http_json(server + "/x") == {"got": "GET"}
    assert http_json(server + "/x", {"deltas": 3}) == {"got": {"deltas": 3}, "ctype": "application/json"}
    assert http_json(server + "/empty") == {}


@quick
def test_wait_http_returns_for_any_status_and_times_out_when_nothing_listens(server):
    wait_http(server + "/missing", 5)  # a 404 is an answer: the process listens
    with pytest.raises(TimeoutError, match="did not answer within 0.3s"):
        wait_http(f"http://127.0.0.1:{free_port()}/", 0.3)


def test_wait_http_stops_waiting_for_a_process_that_exited():
    proc = subprocess.Popen([sys.executable, "-c", "raise SystemExit(4)"])
    proc.wait(10)
    with pytest.raises(RuntimeError, match="exited with code 4 before listening"):
        wait_http(f"http://127.0.0.1:{free_port()}/", 30, proc)


@pytest.fixture
def mock(tmp_path):
    m = FastMock().start(tmp_path)
    yield m
    m.stop()


def test_the_mock_counts_model_calls_and_takes_a_config(mock, tmp_path):
    assert mock.url.startswith("http://127.0.0.1:") and mock.calls() == 0
    mock.configure(deltas=2, delay_ms=0)
    status, answer = _post(mock.url, PASSTHROUGH_MODEL)
    assert status == 200 and answer["type"] == "message" and mock.calls() == 1
    assert mock.cpu_s() is not None and mock.peak_rss_mb() > 0
    assert (tmp_path / "mock.stderr.log").exists()


def test_the_floor_relays_to_the_mock_and_stops(mock, tmp_path):
    floor = Floor()
    floor.start(mock.url, tmp_path)
    try:
        assert floor.url != mock.url and floor.pid is not None
        assert _post(floor.url, PASSTHROUGH_MODEL)[0] == 200 and mock.calls() == 1
    finally:
        floor.stop()
    assert floor.proc.poll() is not None and floor._log is None
    floor.stop()  # a second stop is harmless


def test_ccp_routes_the_conversion_model_to_the_openai_provider_on_the_mock(mock, tmp_path):
    ccp = Ccp()
    ccp.start(mock.url, tmp_path)
    try:
        providers = (tmp_path / "ccp" / "providers.yaml").read_text()
        assert f"base_url: {mock.url}/v1" in providers and f"- name: {CONVERT_MODEL}" in providers
        status, answer = _post(ccp.url, ccp.model(convert=True))
        assert status == 200 and answer["type"] == "message"  # converted back from the mock's OpenAI
        assert _post(ccp.url, ccp.model(convert=False))[0] == 200
        assert mock.calls() == 2 and ccp.version
        [convert, passthrough] = ccp.shim.wait_for_records(2)
        assert convert["protocol_out"] == "openai" and passthrough["lane"] == "anthropic"
    finally:
        ccp.stop()


@quick
def test_a_proc_that_never_started_has_nothing_to_report():
    proc = Proc("p")
    assert (proc.pid, proc.cpu_s(), proc.peak_rss_mb()) == (None, None, None)
    proc.stop()


def _post_tls(url: str, ca: str, model: str = PASSTHROUGH_MODEL) -> int:
    import ssl
    body = json.dumps({"model": model, "max_tokens": 5, "messages": []}).encode()
    req = urllib.request.Request(url + "/v1/messages", data=body, method="POST",
                                 headers={"content-type": "application/json"})
    context = ssl.create_default_context(cafile=ca)
    with urllib.request.urlopen(req, timeout=10, context=context) as resp:  # noqa: S310 - loopback
        return resp.status


def test_the_mock_serves_tls_with_its_own_ca_and_counts_handshakes(mock, tmp_path):
    assert mock.tls_url.startswith("https://127.0.0.1:") and mock.tls_url != mock.url
    assert mock.ca == str(tmp_path / "mock-tls" / "ca.pem")
    assert _post_tls(mock.tls_url, mock.ca) == 200 and _post_tls(mock.tls_url, mock.ca) == 200
    counts = mock.counts()
    assert (counts["calls"], counts["tls_calls"], counts["h2_calls"], counts["handshakes"]) == \
        (2, 2, 0, 2)  # urllib: one connection per request, HTTP/1.1


@quick
def test_the_https_path_targets_know_they_are_tls(tmp_path):
    direct = Direct("direct-tls", tls=True)
    direct.start("https://127.0.0.1:9", tmp_path, ca="/ca.pem")
    assert (direct.tls, direct.url, direct.ca) == (True, "https://127.0.0.1:9", "/ca.pem")
    assert not Direct().tls and not Floor().tls and not Ccp().tls and Ccp(tls=True).tls
    assert Target("any").ca is None


def test_floor_tls_relays_to_the_tls_port_on_one_kept_connection(mock, tmp_path):
    floor = Floor("floor-tls", tls=True)
    floor.start(mock.tls_url, tmp_path, ca=mock.ca)
    try:
        assert floor.ca == mock.ca and (tmp_path / "floor-tls.stderr.log").exists()
        assert [_post(floor.url, PASSTHROUGH_MODEL)[0] for _ in range(3)] == [200] * 3
        counts = mock.counts()
        assert (counts["tls_calls"], counts["h2_calls"], counts["handshakes"]) == (3, 0, 1)
    finally:
        floor.stop()


def test_ccp_tls_trusts_the_mocks_ca_and_sends_over_tls(mock, tmp_path):
    ccp = Ccp("ccp-tls", tls=True)
    ccp.start(mock.tls_url, tmp_path, ca=mock.ca)
    try:
        assert ccp.shim.overlay["CCP_CA_BUNDLE"] == mock.ca
        assert ccp.shim.overlay["CCP_ANTHROPIC_BASE_URL"] == mock.tls_url
        assert _post(ccp.url, PASSTHROUGH_MODEL)[0] == 200 and _post(ccp.url, PASSTHROUGH_MODEL)[0] == 200
        counts = mock.counts()
        assert counts["tls_calls"] == 2 and counts["h2_calls"] == 0  # the default client: HTTP/1.1
    finally:
        ccp.stop()


class _FakeServer:
    """Stands in for harness.postgres.PostgresServer: what CcpPg asks of it, recorded."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[str] = []
        self.fail = fail
        self.root = None

    def start(self):
        self.calls.append("start")
        return self

    def database(self, name):
        self.calls.append(f"database {name}")
        return f"postgresql://ccp@127.0.0.1:5999/{name}"

    def close(self):
        self.calls.append("close")


@quick
def test_ccp_pg_points_the_shim_at_a_database_of_its_own_server_and_removes_it(monkeypatch, tmp_path):
    server = _FakeServer()
    monkeypatch.setattr("harness.bench.targets.PostgresServer", lambda: server)
    seen = {}
    monkeypatch.setattr(Ccp, "start", lambda self, url, workdir, ca=None: seen.update(
        env=dict(self.extra_env), url=url, tls=self.tls))
    target = CcpPg()
    target.start("http://127.0.0.1:9", tmp_path)
    assert seen == {"env": {"CCP_STORE_URL": "postgresql://ccp@127.0.0.1:5999/bench"},
                    "url": "http://127.0.0.1:9", "tls": False}
    assert target.name == "ccp-pg" and target.db_cpu_s() is None  # (the fake has no folder)
    target.stop()
    target.stop()  # a second stop is harmless
    assert server.calls == ["start", "database bench", "close"]


@quick
def test_ccp_pg_removes_its_server_when_the_shim_does_not_start(monkeypatch, tmp_path):
    server = _FakeServer()
    monkeypatch.setattr("harness.bench.targets.PostgresServer", lambda: server)

    def fail(self, *args, **kwargs):
        raise RuntimeError("shim exited with 1")

    monkeypatch.setattr(Ccp, "start", fail)
    with pytest.raises(RuntimeError):
        CcpPg().start("http://127.0.0.1:9", tmp_path)
    assert server.calls[-1] == "close"


@quick
def test_ccp_pg_says_why_it_cannot_run_without_postgresql(monkeypatch):
    from harness.postgres import SKIP_REASON
    monkeypatch.setattr("harness.bench.targets.find_bin_dir", lambda: None)
    assert CcpPg.missing() == SKIP_REASON and "PostgreSQL is not installed" in SKIP_REASON
    monkeypatch.setattr("harness.bench.targets.find_bin_dir", lambda: Path("/pg/bin"))
    assert CcpPg.missing() is None


@pytest.mark.store
def test_ccp_pg_writes_its_records_into_the_database_and_stops_the_server(mock, tmp_path):
    if CcpPg.missing():
        pytest.skip(CcpPg.missing())
    import psycopg
    target = CcpPg()
    target.start(mock.url, tmp_path)
    try:
        url = target.extra_env["CCP_STORE_URL"]
        assert url.startswith("postgresql://") and url.endswith("/bench")
        assert _post(target.url, PASSTHROUGH_MODEL)[0] == 200
        [rec] = target.shim.wait_for_records(1)

        def stored():
            with psycopg.connect(url) as conn:
                return [r[0] for r in conn.execute("SELECT rid FROM samples")]

        assert wait_until(stored, 15, "the row in PostgreSQL") == [rec["rid"]]
        assert target.db_cpu_s() is not None and target.db_cpu_s() > 0
        root = target.server.root
    finally:
        target.stop()
    assert target.server is None and not root.exists()
