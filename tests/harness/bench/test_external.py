"""The third-party targets (harness.bench.external): installed on demand, configured to use the
mock, started and waited for. Nothing is installed here: `ensure()` is shown finding what is there or
saying why it cannot install, and `start()` runs a stand-in executable that records how it was started
and answers HTTP on the port it was given."""
import json
import os
import stat
import sys
from pathlib import Path

import pytest

from harness.bench import external
from harness.bench.external import CCR, LiteLLM, _run
from harness.bench.targets import CONVERT_MODEL, PASSTHROUGH_MODEL

quick = pytest.mark.quick  # (the tests that start processes are not `quick`)

# A stand-in for `litellm` or `node`: writes its argv, cwd and a few env values to started.json in
# its working folder, then serves 200 to any GET on the port it was told (--port N, or the ccr
# config's PORT), until it is terminated.
STAND_IN = f"""#!{sys.executable}
import http.server, json, os, sys
from pathlib import Path
argv = sys.argv[1:]
if "--port" in argv:
    port = int(argv[argv.index("--port") + 1])
else:
    port = json.loads((Path(os.environ["HOME"]) / ".claude-code-router" / "config.json").read_text())["PORT"]
Path("started.json").write_text(json.dumps({{"argv": argv, "cwd": os.getcwd(), "env": {{
    k: os.environ.get(k) for k in ("HOME", "NODE_ENV", "LITELLM_LOCAL_MODEL_COST_MAP", "CCP_SECRET")}}}}))
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.send_header("content-length", "0"); self.end_headers()
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
"""


def _stand_in(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(STAND_IN)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@quick
def test_run_says_none_or_why_not_and_logs_the_output(tmp_path):
    log = tmp_path / "install.log"
    assert _run([sys.executable, "-c", "print('installed')"], 30, log) is None
    assert _run([sys.executable, "-c", "raise SystemExit(3)"], 30, log) == f"exit 3 (see {log})"
    assert _run([str(tmp_path / "no-such-tool")], 30, log).startswith("FileNotFoundError: ")
    assert log.read_text().startswith("installed\n")


def test_run_gives_up_on_an_install_that_takes_too_long(tmp_path):
    reason = _run([sys.executable, "-c", "import time; time.sleep(60)"], 0.3, tmp_path / "log")
    assert reason.startswith("TimeoutExpired: ")


@quick
def test_ensure_finds_what_is_installed_without_installing(tmp_path, monkeypatch):
    monkeypatch.setattr(LiteLLM, "venv", tmp_path / "venv-litellm")
    monkeypatch.setattr(CCR, "prefix", tmp_path / "ccr")
    monkeypatch.setattr(external, "_run", lambda *a: pytest.fail(f"would install: {a}"))
    litellm, ccr = LiteLLM(), CCR()
    assert litellm.exe == tmp_path / "venv-litellm" / "bin" / "litellm"
    assert ccr.cli == (tmp_path / "ccr" / "node_modules" / "@musistudio" / "claude-code-router"
                       / "dist" / "cli.js")
    for path in (litellm.exe, ccr.cli):
        path.parent.mkdir(parents=True)
        path.write_text("")
    assert litellm.ensure() is None and ccr.ensure() is None


@quick
def test_ccr_without_npm_or_node_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(CCR, "prefix", tmp_path / "ccr")
    monkeypatch.setattr(external.shutil, "which", lambda name: None)
    assert CCR().ensure() == "npm/node not found"


@quick
def test_ccr_names_its_provider_in_the_model():
    assert CCR().model(convert=False) == f"mock,{PASSTHROUGH_MODEL}"
    assert CCR().model(convert=True) == f"mockoa,{CONVERT_MODEL}"
    assert LiteLLM().model(convert=True) == CONVERT_MODEL


def test_litellm_starts_on_loopback_with_both_models_on_the_mock(tmp_path, monkeypatch):
    monkeypatch.setattr(LiteLLM, "venv", tmp_path / "venv")
    monkeypatch.setenv("CCP_SECRET", "not for third parties")
    target = LiteLLM()
    _stand_in(target.exe)
    try:
        target.start("http://127.0.0.1:9999", tmp_path / "work")
        home = tmp_path / "work" / "litellm"
        started = json.loads((home / "started.json").read_text())
        port = target.url.rsplit(":", 1)[1]
        assert started["argv"] == ["--config", str(home / "config.yaml"), "--host", "127.0.0.1",
                                   "--port", port]
        assert started["cwd"] == str(home) and started["env"]["HOME"] == str(home)
        assert started["env"]["LITELLM_LOCAL_MODEL_COST_MAP"] == "True"
        assert started["env"]["CCP_SECRET"] is None  # the shim's own variables are not passed on
        config = (home / "config.yaml").read_text()
        assert f"model: anthropic/{PASSTHROUGH_MODEL}, api_base: 'http://127.0.0.1:9999'" in config
        assert f"model: hosted_vllm/{CONVERT_MODEL}, api_base: 'http://127.0.0.1:9999/v1'" in config
        assert target.version == "?"  # no real venv python to ask
    finally:
        target.stop()
    assert target.proc.poll() is not None


def test_ccr_starts_with_a_home_of_its_own_and_two_providers_on_the_mock(tmp_path, monkeypatch):
    monkeypatch.setattr(CCR, "prefix", tmp_path / "ccr")
    _stand_in(tmp_path / "bin" / "node")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    target = CCR()
    target.cli.parent.mkdir(parents=True)
    target.cli.write_text("// the router")
    (target.cli.parent.parent / "package.json").write_text('{"version": "1.2.3"}')
    try:
        target.start("http://127.0.0.1:9999", tmp_path / "work")
        home = tmp_path / "work" / "ccr"
        started = json.loads((home / "started.json").read_text())
        assert started["argv"] == [str(target.cli), "start"]
        assert (started["env"]["HOME"], started["env"]["NODE_ENV"]) == (str(home), "production")
        config = json.loads((home / ".claude-code-router" / "config.json").read_text())
        assert target.url == f"http://127.0.0.1:{config['PORT']}" and config["HOST"] == "127.0.0.1"
        assert [(p["name"], p["api_base_url"], p["models"]) for p in config["Providers"]] == [
            ("mock", "http://127.0.0.1:9999/v1/messages", [PASSTHROUGH_MODEL]),
            ("mockoa", "http://127.0.0.1:9999/v1/chat/completions", [CONVERT_MODEL])]
        assert config["Router"]["default"] == f"mock,{PASSTHROUGH_MODEL}"
        assert target.version == "1.2.3"
    finally:
        target.stop()


@pytest.mark.parametrize("tls", [True, False])
def test_a_peer_on_the_https_path_is_told_to_trust_the_mocks_ca_and_only_then(tmp_path, monkeypatch,
                                                                               tls):
    monkeypatch.setattr(LiteLLM, "venv", tmp_path / "venv")
    ca = str(tmp_path / "ca.pem") if tls else None
    target = LiteLLM("litellm-tls" if tls else "litellm", tls=tls)
    _stand_in(target.exe)
    captured = {}
    real_popen = external.subprocess.Popen

    def popen(cmd, **kwargs):
        if cmd[0] == str(target.exe):  # (not the version query that follows)
            captured.update(kwargs["env"])
        return real_popen(cmd, **kwargs)
    monkeypatch.setattr(external.subprocess, "Popen", popen)
    try:
        target.start("https://127.0.0.1:9999" if tls else "http://127.0.0.1:9999",
                     tmp_path / "work", ca=ca)
    finally:
        target.stop()
    trusted = {k: captured.get(k) for k in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE",
                                            "NODE_EXTRA_CA_CERTS")}
    assert trusted == ({k: ca for k in trusted} if tls  # else: the machine's, untouched
                       else {k: os.environ.get(k) for k in trusted})
    assert (tmp_path / "work" / target.name / "config.yaml").exists()  # a home per target


def test_a_candidate_relay_runs_from_its_own_venv_and_relays_over_tls(tmp_path, monkeypatch):
    from harness.bench.external import CandidateRelay
    from harness.bench.targets import http_json
    from harness.tls_mock import TlsMock, anthropic_app

    monkeypatch.setattr(CandidateRelay, "venv", Path(sys.executable).parent.parent)  # ccp's own
    target = CandidateRelay("aiohttp")
    assert target.ensure() is None and target.tls and target.name == "relay-tls-aiohttp"
    with TlsMock(anthropic_app) as mock:
        try:
            target.start(mock.base_url, tmp_path, ca=str(mock.ca_path))
            answer = http_json(target.url + "/v1/messages", {"model": PASSTHROUGH_MODEL})
        finally:
            target.stop()
        assert answer["type"] == "message" and [c.path for c in mock.calls] == ["/v1/messages"]


def test_a_candidate_whose_library_is_missing_fails_to_start_with_the_reason(tmp_path, monkeypatch):
    from harness.bench.external import CandidateRelay
    try:
        import rnet  # noqa: F401
        pytest.skip("rnet is installed here")
    except ImportError:
        pass
    monkeypatch.setattr(CandidateRelay, "venv", Path(sys.executable).parent.parent)
    target = CandidateRelay("rnet-h1")
    try:
        with pytest.raises(RuntimeError, match="rnet-h1 is not installed"):
            target.start("https://127.0.0.1:9", tmp_path, ca=None)
    finally:
        target.stop()
