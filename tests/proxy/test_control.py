import io
import json
import socket
from dataclasses import dataclass, field

import pytest

import harness.cli_probe
from proxy import control
from proxy.control import (banner, env_main, exports, format_probe,
                           probe_main, shell_init_main, up)
from proxy.settings import Settings

pytestmark = pytest.mark.quick

@pytest.fixture
def logs(tmp_path, monkeypatch):
    monkeypatch.setenv("CCP_LOGS_DIR", str(tmp_path))
    return tmp_path


# ------------------------------------------------------------------ env and banner
def test_env_points_at_the_profile_port_when_nothing_runs(logs, capsys):
    assert env_main([]) == 0
    assert capsys.readouterr().out.splitlines() == exports(18080) == [
        "export ANTHROPIC_BASE_URL=http://127.0.0.1:18080", "export NO_PROXY=127.0.0.1,localhost",
        "export CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1"]


def test_env_follows_the_profile_and_the_running_shim(logs, capsys, monkeypatch):
    monkeypatch.setenv("CCP_PROFILE", "dev")
    monkeypatch.setenv("ZAI_API_KEY", "zai-secret-value")
    env_main([])
    out = capsys.readouterr().out
    assert "ANTHROPIC_BASE_URL=http://127.0.0.1:18180\n" in out and "zai-secret" not in out
    (logs / "ccp.port").write_text("40123\n")
    monkeypatch.setattr(control, "running_pid", lambda files: 4242)
    env_main([])
    assert "ANTHROPIC_BASE_URL=http://127.0.0.1:40123\n" in capsys.readouterr().out


def test_env_unset(capsys):
    assert env_main(["--unset"]) == 0
    assert capsys.readouterr().out == "unset ANTHROPIC_BASE_URL\n"


def test_banner_says_where_each_lane_goes():
    s = Settings.from_env({"CCP_PROFILE": "dev", "ZAI_HEADER_MODE": "authorization"})
    assert banner(s, "127.0.0.1", 18180, 77) == (
        f"ccp up: http://127.0.0.1:18180 pid 77 profile dev logs {s.home}/logs/dev — "
        "haiku→zai (to_zai, authorization, NO CREDENTIAL: ZAI_API_KEY is not set, zai will answer "
        "401); sonnet→anthropic (to_anth)")
    assert banner(Settings(offload_paused=True), "127.0.0.1", 1, 2).endswith(
        "haiku→anthropic (offload_paused); sonnet→anthropic (offload_paused)")


def test_banner_says_where_haiku_really_goes_under_a_licence_or_an_override():
    enforced = Settings.from_env({"CCP_LICENSE_ENFORCE": "1", "ZAI_API_KEY": "z"})
    assert "haiku→anthropic (license_block, licence missing, no zai_offload)" in \
        banner(enforced, "127.0.0.1", 1, 2)
    override = Settings.from_env({"CCP_MODEL": "claude-opus-4-1", "ZAI_API_KEY": "z"})
    assert banner(override, "127.0.0.1", 1, 2).endswith(
        "haiku→anthropic (manual override claude-opus-4-1 from CCP_MODEL); "
        "sonnet→anthropic (manual override claude-opus-4-1 from CCP_MODEL)")
    keyed = Settings.from_env({"ZAI_API_KEY": "z"})
    assert banner(keyed, "127.0.0.1", 1, 2).endswith(
        "haiku→zai (to_zai, x-api-key); sonnet→anthropic (to_anth)")


# ------------------------------------------------------------------ up refuses early
def test_up_refuses_when_already_running(logs, monkeypatch):
    monkeypatch.setattr(control, "running_pid", lambda files: 4242)
    (logs / "ccp.port").write_text("40123\n")
    err = io.StringIO()
    assert up(Settings.from_env(), 0, err=err) == 1
    assert "AlreadyRunning: ccp is already running (pid 4242) on port 40123" in err.getvalue()


def test_up_refuses_a_busy_port(logs):
    err = io.StringIO()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert up(Settings.from_env(), port, err=err) == 1
    assert err.getvalue().strip() == (f"PortBusy: 127.0.0.1:{port} is in use; pick another with "
                                      f"--port or stop what holds it")
    assert not (logs / "ccp.pid").exists()


def test_up_names_an_address_it_cannot_bind(logs):
    err = io.StringIO()
    assert up(Settings.from_env(), 18080, host="203.0.113.7", err=err) == 1
    assert err.getvalue().startswith("BindError: cannot bind 203.0.113.7:18080: ")


def test_down_when_nothing_runs(logs, capsys):
    (logs / "ccp.pid").write_text("garbage\n")
    assert control.down_main([]) == 0
    assert capsys.readouterr().out == "ccp down: not running (profile default)\n"
    assert not (logs / "ccp.pid").exists()


# ------------------------------------------------------------------ probe
@dataclass
class FakeResult:
    model: str
    lane: str | None = "zai"
    text: str = "hi there"
    status: int | None = 200
    error: str | None = None
    exit_code: int | None = 0
    elapsed_ms: float = 1234.4
    rid: str | None = "r-1"
    calls: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None

    def row(self) -> dict:
        return {"kind": "cli", "model": self.model, "lane": self.lane, "ok": self.ok,
                "text": self.text, "elapsed_ms": self.elapsed_ms}


@pytest.fixture
def fake_cli(logs, monkeypatch):
    calls = []

    def cli_probe(base_url, model, prompt, *, auth_token=None, api_key=None, timeout=60.0):
        calls.append(dict(base_url=base_url, model=model, prompt=prompt, auth_token=auth_token,
                          api_key=api_key, timeout=timeout))
        return FakeResult(model, error=None if "fail" not in prompt else "exit 1")

    # the name `ccp probe` imports: patched strictly, so a moved or renamed function fails here
    monkeypatch.setattr(harness.cli_probe, "cli_probe", cli_probe)
    monkeypatch.setattr(control, "healthy", lambda port, host="127.0.0.1": True)
    return calls


def test_probe_prints_one_line(fake_cli, capsys, monkeypatch):
    monkeypatch.setenv("CCP_PROFILE", "dev")
    assert probe_main(["haiku", "Reply with exactly: hi", "--timeout", "9"]) == 0
    assert capsys.readouterr().out == 'ok haiku zai "hi there" 1234ms\n'
    assert fake_cli == [dict(base_url="http://127.0.0.1:18180", model="haiku",
                             prompt="Reply with exactly: hi", auth_token=None, api_key=None,
                             timeout=9.0)]


def test_probe_json_and_failure(fake_cli, capsys):
    assert probe_main(["claude-sonnet-4-5", "please fail", "--json"]) == 1
    row = json.loads(capsys.readouterr().out)
    assert row["model"] == "claude-sonnet-4-5" and row["ok"] is False
    assert format_probe(FakeResult("sonnet", lane=None, error="boom", status=None)).startswith(
        'FAIL sonnet - "hi there" 1234ms status=None exit=0 error=boom')


def test_probe_needs_a_running_shim(logs, capsys, monkeypatch):
    monkeypatch.setattr(control, "healthy", lambda port, host="127.0.0.1": False)
    assert probe_main(["sonnet", "hi"]) == 1
    assert "NotRunning: no shim answers on 127.0.0.1:18080" in capsys.readouterr().err


def test_probe_arguments_are_required(capsys):
    with pytest.raises(SystemExit) as exc:
        probe_main(["haiku"])
    assert exc.value.code == 2


# ------------------------------------------------------------------ shell-init
def test_shell_init_defines_the_familiar_functions(capsys):
    assert shell_init_main([]) == 0
    out = capsys.readouterr().out
    for name in ("ccc-on", "ccc-off", "ccc-status", "ccc-logs", "ccc-restart", "ccp-haiku",
                 "ccp-sonnet"):
        assert f"\n{name}() {{" in out
    assert " -m proxy " in out
