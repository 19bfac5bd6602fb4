"""Each failure class, produced on purpose; cleanup always runs and the result file says which."""
import dataclasses
import json
import socket
from pathlib import Path

import pytest

pytestmark = [pytest.mark.sandbox, pytest.mark.faults]


def _saved(result):
    return json.loads(Path(result.result_path).read_text())


def test_proxy_bind_error(run_sandbox, task):
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        result = run_sandbox(task, port=held.getsockname()[1])
    assert result.failure_class == "proxy_bind_error" and "in use" in result.error
    assert _saved(result)["class"] == "proxy_bind_error" and "cleanup" in result.steps


def test_sandbox_create_error(run_sandbox, task, tmp_path):
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the sandboxes should go")
    result = run_sandbox(task, runtime="local", runtime_options={"base_dir": blocked / "boxes"})
    assert result.failure_class == "sandbox_create_error"
    assert result.sandbox_id is None and "cleanup" in result.steps


def test_upstream_error(run_sandbox, task):
    run_sandbox.mock.set_default("status=500")
    result = run_sandbox(task)
    assert result.failure_class == "upstream_error", (result.error, result.commands)
    assert "500" in result.error


def test_runtime_error(run_sandbox, task):
    failing = dataclasses.replace(task, commands=("claude --version", "echo broken >&2; exit 3"))
    result = run_sandbox(failing)
    assert result.failure_class == "runtime_error" and "exited 3" in result.error and "broken" in result.error


def test_artifact_read_error(run_sandbox, task):
    silent = dataclasses.replace(task, commands=("claude --version",))
    result = run_sandbox(silent)
    assert result.failure_class == "artifact_read_error"
    assert _saved(result)["artifact_text"] is None


def test_cleanup_runs_after_a_failure(run_sandbox, task, tmp_path):
    boxes = tmp_path / "boxes"
    failing = dataclasses.replace(task, commands=("sleep 300 & echo $! > /tmp/bg.pid; exit 1",))
    result = run_sandbox(failing, runtime="local", runtime_options={"base_dir": boxes})
    assert result.failure_class == "runtime_error"
    assert list(boxes.iterdir()) == []  # the sandbox folder is gone …
    assert _processes_running(b"sleep\x00300") == []  # … and so is what it left running


def _processes_running(cmdline_part: bytes) -> list[str]:
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if cmdline_part in (proc / "cmdline").read_bytes():
                found.append(proc.name)
        except OSError:  # it ended while we looked
            pass
    return found
