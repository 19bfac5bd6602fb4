"""`ccp sandbox-smoke` (harness.sandbox.smoke): the mock upstreams' environment, the usage errors,
and one whole run on mocks with a stand-in runtime (tests/harness/sandbox/stand_in.py) in place of a
real sandbox and the claude CLI: its exit code, its summary and where its shim kept its logs."""
import json
from types import SimpleNamespace

import pytest

from harness import keys as harness_keys
from harness.sandbox import smoke
from harness.sandbox.smoke import DEFAULT_TASK, main, mock_env
from tests.harness.sandbox.stand_in import Runtime


@pytest.mark.quick
def test_on_mocks_the_glm_route_and_both_lanes_point_at_the_mock_with_test_keys():
    mock = SimpleNamespace(base_url="http://127.0.0.1:4000", zai_base_url="http://127.0.0.1:4000/zai")
    env = mock_env(mock)
    keys = harness_keys.test_keys()
    assert env == {"GLM_BASE_URL": "http://127.0.0.1:4000/v1", "GLM_API_KEY": "glm-test-key-3f9d2a61",
                   "CCP_ANTHROPIC_BASE_URL": "http://127.0.0.1:4000",
                   "CCP_ZAI_BASE_URL": "http://127.0.0.1:4000/zai",
                   "ANTHROPIC_AUTH_TOKEN": keys["ANTHROPIC_AUTH_TOKEN"], "ZAI_API_KEY": keys["ZAI_API_KEY"]}


@pytest.mark.quick
def test_an_unknown_runtime_is_a_usage_error(tmp_path, capsys):
    assert main(["--runtime", "vm", "--results", str(tmp_path)]) == 2
    assert "UsageError: unknown sandbox runtime 'vm'" in capsys.readouterr().err
    assert not (tmp_path / "sandbox").exists()


@pytest.mark.quick
def test_a_task_file_that_cannot_be_read_is_a_usage_error(tmp_path, capsys):
    missing = tmp_path / "nope.yaml"
    assert main(["--task", str(missing), "--results", str(tmp_path)]) == 2
    assert f"UsageError: {missing}: cannot read" in capsys.readouterr().err


@pytest.mark.quick
def test_a_bad_setting_is_a_config_error_when_the_results_folder_comes_from_settings(monkeypatch,
                                                                                  capsys):
    monkeypatch.setenv("CCP_JSON_TIMEOUT", "soon")
    assert main(["--runtime", "local"]) == 2
    assert "ConfigError: CCP_JSON_TIMEOUT='soon'" in capsys.readouterr().err


@pytest.fixture
def stand_in(monkeypatch):
    """The runtime `main` gets, whatever --runtime names: a stand-in whose artifact is `artifact`."""
    made = {}

    def use(artifact: str):
        def get_runtime(name, **options):
            made["runtime"] = Runtime(artifact=artifact)
            made["name"] = name
            return made["runtime"]
        monkeypatch.setattr(smoke, "get_runtime", get_runtime)
        return made
    monkeypatch.delenv("ALLOW_REAL_API", raising=False)
    return use


def test_a_run_on_mocks_that_meets_the_task_exits_0(tmp_path, stand_in, capsys):
    made = stand_in("A2S_OK_20260211\n")
    assert main(["--runtime", "local", "--port", "0", "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    summary = json.loads(out[:out.index("\n}\n") + 2])
    assert (summary["task"], summary["runtime"], summary["class"], summary["error"]) == \
        ("claude_proxy_demo", "stand-in", "ok", None)
    assert "[sandbox] artifact: 'A2S_OK_20260211'" in out
    assert made["name"] == "local" and made["runtime"].box.deleted
    logs = tmp_path / "runs" / "sandbox" / DEFAULT_TASK.stem  # the run's own folder, not the daily logs
    records = [json.loads(line) for line in (logs / "usage.jsonl").read_text().splitlines()]
    assert len(records) == 2 and {r["model"] for r in records} == {"glm-4.6"}  # one per command
    [result_file] = (tmp_path / "sandbox").glob("claude_proxy_demo-*.json")
    assert f"[sandbox] result: {result_file}" in out


def test_a_run_whose_artifact_misses_the_expected_text_exits_1(tmp_path, stand_in, capsys):
    stand_in("something else")
    logs = tmp_path / "mine"
    assert main(["--port", "0", "--results", str(tmp_path), "--logs", str(logs)]) == 1
    out = capsys.readouterr().out
    assert '"class": "runtime_error"' in out and "does not contain 'A2S_OK_20260211'" in out
    assert (logs / "usage.jsonl").is_file()
