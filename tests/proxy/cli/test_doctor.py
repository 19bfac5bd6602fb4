import io
import json
import socket

import pytest

from proxy.cli import doctor
from proxy.cli.doctor import GROUPS, main, render, run_checks, verdict, writable
from proxy.config.load import load_settings
from proxy.config.settings import Settings

pytestmark = pytest.mark.quick

SECRETS = {"ZAI_API_KEY": "zai-secret-123", "ANTHROPIC_AUTH_TOKEN": "sk-ant-secret-456"}


@pytest.fixture
def tools(monkeypatch):
    """No subprocess: every tool is found at /bin/<name> and reports version 1.0."""
    found = {"claude": "/x/claude", "curl": "/usr/bin/curl", "node": "/usr/bin/node",
             "npm": "/usr/bin/npm"}
    monkeypatch.setattr(doctor, "find_claude", lambda: found["claude"])
    monkeypatch.setattr(doctor.shutil, "which", lambda name: found.get(name))
    monkeypatch.setattr(doctor, "version_of", lambda cmd, timeout=0: f"{cmd[0]} 1.0")
    return found


@pytest.fixture
def folders(tmp_path, monkeypatch):
    monkeypatch.setenv("CCP_LOGS_DIR", str(tmp_path / "logs"))
    monkeypatch.setenv("CCP_RESULTS_DIR", str(tmp_path / "results"))
    return tmp_path


def by_name(checks):
    return {c.name: c for c in checks}


def test_all_groups_and_a_ready_mock_path(tools, folders, capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    for group in GROUPS:
        assert f"\n{group}: " in "\n" + out
    assert "mock repro: ready\n" in out and "will be created" in out
    assert "claude CLI" in out and "/x/claude 1.0" in out


def test_keys_are_named_never_shown(tools, folders, monkeypatch):
    for key, value in SECRETS.items():
        monkeypatch.setenv(key, value)
    out = io.StringIO()
    assert main(["--json"], out=out) == 0
    text = out.getvalue()
    assert all(value not in text for value in SECRETS.values())
    checks = {c["name"]: c for c in json.loads(text)["checks"]}
    assert checks["ZAI_API_KEY"]["status"] == "ok" and checks["ZAI_API_KEY"]["detail"] == "set"
    assert checks["ANTHROPIC_AUTH_TOKEN/API_KEY"]["detail"] == "ANTHROPIC_AUTH_TOKEN set"


def test_missing_keys_are_warnings_only(tools, folders):
    checks = by_name(run_checks(load_settings({"CCP_LOGS_DIR": str(folders)})))
    assert checks["ZAI_API_KEY"].status == "warn"
    assert checks["ANTHROPIC_AUTH_TOKEN/API_KEY"].status == "warn"
    assert checks["ALLOW_REAL_API"].status == "warn"
    assert verdict(list(checks.values()))


def test_missing_cli_says_how_to_install(tools, folders):
    tools["claude"] = None
    tools["curl"] = None
    checks = by_name(run_checks(load_settings({})))
    assert checks["claude CLI"].status == "missing" and "make claude" in checks["claude CLI"].hint
    assert checks["curl"].status == "missing"
    out = io.StringIO()
    render(list(checks.values()), out)
    assert "CLI probes: not ready (claude CLI)" in out.getvalue()


def test_a_bad_setting_is_a_failing_check_not_a_traceback(tools, folders, monkeypatch, capsys):
    monkeypatch.setenv("CCP_PROFILE", "Not A Name")
    assert main([]) == 1
    out = capsys.readouterr().out
    assert "mock repro: not ready (settings)" in out
    assert "ConfigError: CCP_PROFILE='Not A Name'" in out


def test_unwritable_logs_folder_fails_the_mock_path(tools, tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv("CCP_LOGS_DIR", str(blocker))
    monkeypatch.setenv("CCP_RESULTS_DIR", str(tmp_path))
    assert main([], out=io.StringIO()) == 1
    assert writable(blocker) == (False, f"{blocker} exists and is not a folder")
    assert writable(tmp_path)[0] and writable(tmp_path / "a" / "b") == (True, f"{tmp_path / 'a' / 'b'} will be created")


def test_port_held_by_another_process(tools, folders):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        settings = Settings(logs_dir=str(folders), default_port=sock.getsockname()[1])
        port = by_name(run_checks(settings))["port"]
    assert port.status == "warn" and "held by another process" in port.detail
    assert "--port" in port.hint


def test_mitmproxy_is_checked_for_mitm_mode(monkeypatch):
    from proxy.cli import doctor
    assert doctor._mitmproxy_check("mitm mode").status == "ok"  # installed by make venv
    monkeypatch.setattr(doctor.importlib.util, "find_spec", lambda name: None)
    missing = doctor._mitmproxy_check("mitm mode")
    assert missing.status == "missing" and "requirements-mitm.txt" in missing.hint
