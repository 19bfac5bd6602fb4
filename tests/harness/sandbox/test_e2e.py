"""One sandbox task end to end (harness.sandbox.e2e.run_task) with a real shim and a mock upstream
on loopback, and a stand-in runtime whose sandbox is this process: its "agent" sends one real
request through the shim with the credential the sandbox was given. Each failing step ends in its
own class, and the sandbox, the session and the shim are always cleaned up. (The stand-in is
tests/harness/sandbox/stand_in.py.)"""
import json
import socket
from pathlib import Path

import pytest

from harness.mock_upstream import MockUpstream
from harness.sandbox.e2e import RunResult, _admin, _port_free, run_task
from harness.sandbox.runtime import SandboxCreateError
from harness.sandbox.smoke import mock_env
from harness.sandbox.task import Task
from tests.harness.sandbox.stand_in import ARTIFACT, Runtime

TASK = Task("e2e_unit", "glm-4.6", ("agent --print",), ARTIFACT, "Hello from mock glm")


@pytest.fixture
def mock():
    m = MockUpstream("glm").start()
    yield m
    m.stop()


@pytest.fixture
def run(tmp_path, mock):
    def go(runtime: Runtime, port: int = 0, **env) -> RunResult:
        return run_task(TASK, runtime, shim_env={**mock_env(mock), **env}, logs_dir=tmp_path / "logs",
                        results_dir=tmp_path / "results", port=port)
    return go


STEPS = ["start_shim", "load_routes", "load_server_config", "create_sandbox", "register_session",
         "run_commands", "read_artifact", "check_trajectory", "cleanup"]


@pytest.mark.parametrize("admin", [{}, {"CCP_ADMIN_TOKEN": "adm-token-5f0c2e91"}])
def test_a_task_that_does_its_work_through_the_shim_is_ok(run, admin):
    runtime = Runtime()
    result = run(runtime, **admin)
    assert (result.failure_class, result.error) == ("ok", None) and result.ok
    assert list(result.steps) == STEPS and all(ms >= 0 for ms in result.steps.values())
    assert result.artifact_text == "Hello from mock glm" and result.sandbox_id == "box-1"
    assert result.checks["trajectory_pairs"] and result.checks["model_matches_route"]
    assert result.checks["full_request"] and result.checks["session_records"] == 1
    assert "route:glm-4.6" in result.checks["providers"]
    assert len(result.trajectory) == 2 and all(Path(p).is_file() for p in result.trajectory)
    assert result.commands == [{"command": "agent --print", "exit_code": 0,
                                "stdout": "Hello from mock glm", "stderr": ""}]
    assert runtime.box.deleted
    written = json.loads(Path(result.result_path).read_text())
    assert written == {**result.to_json(), "result_path": None}  # written before its own path is set
    assert Path(result.result_path).parent == Path(result.result_path).parents[1] / "sandbox"


def test_the_sandbox_gets_the_shim_and_a_session_token_as_its_only_credential(run, mock):
    runtime = Runtime()
    run(runtime)
    [created] = runtime.created
    env = created["env"]
    assert env["ANTHROPIC_BASE_URL"].startswith("http://127.0.0.1:")
    assert env["ANTHROPIC_AUTH_TOKEN"].startswith("ccp-sess-") and len(env["ANTHROPIC_AUTH_TOKEN"]) == 41
    assert (env["ANTHROPIC_MODEL"], env["CLAUDE_CODE_MAX_RETRIES"]) == ("glm-4.6", "0")
    secrets = set(mock_env(mock).values()) - {mock.base_url, mock.zai_base_url, f"{mock.base_url}/v1"}
    assert not secrets & set(env.values())  # no provider key goes into the sandbox
    assert (created["image"], created["name"], created["timeout"]) == \
        (TASK.image, TASK.name, TASK.timeouts["create"])


def test_an_upstream_error_behind_a_failed_command_is_an_upstream_error(run, mock):
    mock.script("status=529")
    runtime = Runtime()
    result = run(runtime)
    assert result.failure_class == "upstream_error"
    assert result.error.startswith("upstream answered 529 (upstream_5xx) to `agent --print`")
    assert runtime.box.deleted and "read_artifact" not in result.steps


def test_a_failed_command_without_an_upstream_error_is_a_runtime_error(run):
    runtime = Runtime(exit_code=3)
    result = run(runtime)
    assert result.failure_class == "runtime_error"
    assert result.error == "`agent --print` exited 3: agent failed"
    assert runtime.box.deleted


def test_a_sandbox_that_cannot_be_made_is_a_create_error_and_nothing_is_left(run):
    runtime = Runtime(create_error=SandboxCreateError("no image"))
    result = run(runtime)
    assert (result.failure_class, result.error) == ("sandbox_create_error", "no image")
    assert result.session is None and result.sandbox_id is None
    assert "register_session" not in result.steps and "cleanup" in result.steps


def test_an_artifact_without_what_the_task_expects_is_a_runtime_error(run):
    result = run(Runtime(artifact="something else"))
    assert result.failure_class == "runtime_error"
    assert result.error == (f"{ARTIFACT} does not contain 'Hello from mock glm': 'something else'")
    assert "check_trajectory" not in result.steps


def test_an_artifact_that_cannot_be_read_is_an_artifact_read_error(run):
    runtime = Runtime(writes_artifact=False)
    result = run(runtime)
    assert (result.failure_class, result.error) == \
        ("artifact_read_error", f"cannot read {ARTIFACT} in sandbox box-1")
    assert runtime.box.deleted


def test_a_harness_bug_still_ends_in_a_result_and_a_cleanup(run):
    runtime = Runtime(raises=KeyError("oops"))
    result = run(runtime)
    assert (result.failure_class, result.error) == ("runtime_error", "KeyError: 'oops'")
    assert runtime.box.deleted and Path(result.result_path).is_file()


def test_a_port_in_use_is_a_bind_error_before_anything_starts(run):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        runtime = Runtime()
        result = run(runtime, port=busy.getsockname()[1])
    assert result.failure_class == "proxy_bind_error" and "is already in use" in result.error
    assert runtime.created == [] and list(result.steps) == ["start_shim", "cleanup"]
    assert json.loads(Path(result.result_path).read_text())["class"] == "proxy_bind_error"


@pytest.mark.quick
def test_port_zero_is_always_free_and_a_bound_port_is_not():
    assert _port_free("127.0.0.1", 0)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        assert not _port_free("127.0.0.1", busy.getsockname()[1])


@pytest.mark.quick
def test_the_result_json_calls_the_failure_class_class():
    result = RunResult("t", "local", failure_class="runtime_error", error="e")
    data = result.to_json()
    assert data["class"] == "runtime_error" and "failure_class" not in data and not result.ok
    assert RunResult("t", "local").ok


@pytest.mark.quick
def test_admin_calls_carry_the_token_only_when_there_is_one():
    assert _admin({"CCP_ADMIN_TOKEN": "t"}) == {"x-ccp-admin-token": "t"}
    assert _admin({}) == {}
