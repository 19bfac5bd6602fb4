"""Fixtures for the sandbox task: an upstream mock for the task's routes, and a runner."""
import os
from pathlib import Path

import pytest

from harness.sandbox.e2e import run_task
from harness.sandbox.runtimes import get_runtime
from harness.sandbox.smoke import mock_env
from harness.sandbox.task import Task, load_task
from harness.shim import PROJECT_ROOT

TASK_FILE = PROJECT_ROOT / "tasks" / "claude_proxy_demo.yaml"


@pytest.fixture
def task() -> Task:
    return load_task(TASK_FILE)


@pytest.fixture
def run_sandbox(tmp_path, _mock_pair, claude_bin):
    """`run_sandbox(task, runtime="local", **kw) -> RunResult` against the session's anthropic mock
    (which also answers the OpenAI-protocol route)."""
    mock = _mock_pair[0]
    mock.reset()

    def run(task: Task, runtime: str | None = None, port: int = 0, **kw):
        # SANDBOX_RUNTIME switches the default (local); opensandbox gets ccp's compatible server
        runtime = runtime or os.environ.get("SANDBOX_RUNTIME", "local")
        options = kw.pop("runtime_options", {})
        server = None
        if runtime == "opensandbox" and "server_url" not in options:
            from harness.sandbox.opensandbox_server import OpenSandboxServer
            server = OpenSandboxServer().start()
            options["server_url"] = server.base_url
        try:
            rt = get_runtime(runtime, **options)
            return run_task(task, rt, shim_env={**mock_env(mock), **kw.pop("env", {})},
                            logs_dir=Path(tmp_path) / "logs", results_dir=Path(tmp_path) / "results",
                            port=port, **kw)
        finally:
            if server is not None:
                server.stop()

    run.mock = mock
    yield run
    mock.reset()
