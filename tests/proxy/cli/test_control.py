import io
import socket

import pytest

from proxy.cli import control
from proxy.cli.control import (
    banner,
    env_main,
    exports,
    shell_init_main,
    up,
)
from proxy.config.load import load_settings
from proxy.config.settings import Settings

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
    s = load_settings({"CCP_PROFILE": "dev", "ZAI_HEADER_MODE": "authorization"})
    assert banner(s, "127.0.0.1", 18180, 77) == (
        f"ccp up: http://127.0.0.1:18180 pid 77 profile dev logs {s.home}/logs/dev — "
        "haiku→zai (to_zai, authorization, NO CREDENTIAL: ZAI_API_KEY is not set, zai will answer "
        "401); sonnet→anthropic (to_anth)")
    assert banner(Settings(offload_paused=True), "127.0.0.1", 1, 2).endswith(
        "haiku→anthropic (offload_paused); sonnet→anthropic (offload_paused)")


def test_banner_says_where_haiku_really_goes_under_a_licence_or_an_override():
    enforced = load_settings({"CCP_LICENSE_ENFORCE": "1", "ZAI_API_KEY": "z"})
    assert "haiku→anthropic (license_block, licence missing, no zai_offload)" in \
        banner(enforced, "127.0.0.1", 1, 2)
    override = load_settings({"CCP_MODEL": "claude-opus-4-1", "ZAI_API_KEY": "z"})
    assert banner(override, "127.0.0.1", 1, 2).endswith(
        "haiku→anthropic (manual override claude-opus-4-1 from CCP_MODEL); "
        "sonnet→anthropic (manual override claude-opus-4-1 from CCP_MODEL)")
    keyed = load_settings({"ZAI_API_KEY": "z"})
    assert banner(keyed, "127.0.0.1", 1, 2).endswith(
        "haiku→zai (to_zai, x-api-key); sonnet→anthropic (to_anth)")


# ------------------------------------------------------------------ up refuses early
def test_up_refuses_when_already_running(logs, monkeypatch):
    monkeypatch.setattr(control, "running_pid", lambda files: 4242)
    (logs / "ccp.port").write_text("40123\n")
    err = io.StringIO()
    assert up(load_settings(), 0, err=err) == 1
    assert "AlreadyRunning: ccp is already running (pid 4242) on port 40123" in err.getvalue()


def test_up_refuses_a_busy_port(logs):
    err = io.StringIO()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert up(load_settings(), port, err=err) == 1
    assert err.getvalue().strip() == (f"PortBusy: 127.0.0.1:{port} is in use; pick another with "
                                      f"--port or stop what holds it")
    assert not (logs / "ccp.pid").exists()


def test_up_names_an_address_it_cannot_bind(logs):
    err = io.StringIO()
    assert up(load_settings(), 18080, host="203.0.113.7", err=err) == 1
    assert err.getvalue().startswith("BindError: cannot bind 203.0.113.7:18080: ")


def test_down_when_nothing_runs(logs, capsys):
    (logs / "ccp.pid").write_text("garbage\n")
    assert control.down_main([]) == 0
    assert capsys.readouterr().out == "ccp down: not running (profile default)\n"
    assert not (logs / "ccp.pid").exists()


# ------------------------------------------------------------------ probe
# ------------------------------------------------------------------ shell-init
def test_shell_init_defines_the_familiar_functions(capsys):
    assert shell_init_main([]) == 0
    out = capsys.readouterr().out
    for name in ("ccc-on", "ccc-off", "ccc-status", "ccc-logs", "ccc-restart", "ccp-haiku",
                 "ccp-sonnet"):
        assert f"\n{name}() {{" in out
    assert " -m proxy " in out
