"""`ccp probe` (harness.verbs): one real-CLI probe through the running shim, the CLI faked here."""
import json
from dataclasses import dataclass, field

import pytest

import harness.cli_probe
from harness.verbs import VERBS, format_probe, probe_main
from proxy.cli import control

pytestmark = pytest.mark.quick


@pytest.fixture
def logs(tmp_path, monkeypatch):
    monkeypatch.setenv("CCP_LOGS_DIR", str(tmp_path))
    return tmp_path


def test_every_harness_verb_names_a_function_that_exists():
    import importlib
    for name, (target, help_) in VERBS.items():
        module, _, function = target.partition(":")
        assert callable(getattr(importlib.import_module(module), function)), name
        assert help_


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


