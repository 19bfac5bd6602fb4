"""The same task through the official `opensandbox` SDK, against ccp's OpenSandbox-compatible server
(no Docker engine here: its sandboxes are local processes)."""
import pytest

from harness.sandbox.opensandbox_server import OpenSandboxServer

pytestmark = [pytest.mark.sandbox]


@pytest.fixture(scope="module")
def os_server():
    server = OpenSandboxServer().start()
    yield server
    server.stop()


def test_task_through_the_sdk(run_sandbox, task, os_server):
    result = run_sandbox(task, runtime="opensandbox", runtime_options={"server_url": os_server.base_url})
    assert result.failure_class == "ok", (result.error, result.commands)
    assert result.runtime == "opensandbox" and "A2S_OK_20260211" in result.artifact_text
    assert result.commands[0]["stdout"].strip().endswith("(Claude Code)")


def test_bad_image_and_server_down_are_create_errors(run_sandbox, task, os_server):
    import dataclasses
    import socket
    bad = dataclasses.replace(task, image="registry.example/does-not-exist:v0")
    result = run_sandbox(bad, runtime="opensandbox", runtime_options={"server_url": os_server.base_url})
    assert result.failure_class == "sandbox_create_error"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    result = run_sandbox(task, runtime="opensandbox",
                         runtime_options={"server_url": f"http://127.0.0.1:{dead}", "max_retries": 0})
    assert result.failure_class == "sandbox_create_error"
