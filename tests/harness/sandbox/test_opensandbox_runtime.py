"""The `opensandbox` runtime, driven only through its interface (so through the official SDK) against
ccp's OpenSandbox-compatible local server."""
import os
import socket
import threading
import time
import uuid
from pathlib import Path

import pytest
from opensandbox.models.execd import OutputMessage

from harness.sandbox.opensandbox_runtime import OpenSandboxRuntime, join_output
from harness.sandbox.opensandbox_server import OpenSandboxServer
from harness.sandbox.runtime import (
    ArtifactReadError,
    CommandResult,
    SandboxCreateError,
    SandboxError,
)
from harness.sandbox.runtimes import get_runtime

pytestmark = pytest.mark.sandbox


@pytest.fixture(scope="module")
def server():
    with OpenSandboxServer() as srv:
        yield srv


@pytest.fixture
def runtime(server):
    return OpenSandboxRuntime(server.base_url)


@pytest.fixture
def box(runtime):
    sandbox = runtime.create({"FOO": "from create", "SPACED": "a b  $c"}, name="unit test")
    yield sandbox
    sandbox.delete()


def _wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"condition not met within {timeout}s")


def test_get_runtime_builds_it():
    runtime = get_runtime("opensandbox", server_url="http://127.0.0.1:1", api_key="k")
    assert isinstance(runtime, OpenSandboxRuntime) and runtime.name == "opensandbox"
    assert "'k'" not in repr(runtime) and "**********" in repr(runtime)


def test_create_time_env_reaches_commands(box, server):
    assert box.run("echo $FOO") == CommandResult(0, "from create\n", "")
    assert box.run('printf "%s" "$SPACED"').stdout == "a b  $c\n"  # a last line gains its newline
    assert server.sandboxes[box.id].metadata == {"ccp-name": "unit-test"}


def test_exit_codes_propagate_and_stderr_is_separate(box):
    result = box.run("echo out; echo err >&2; echo; exit 3")
    assert result == CommandResult(3, "out\n\n", "err\n", False)
    assert box.run("false").exit_code == 1


def test_a_command_past_its_timeout_is_killed(box):
    started = time.monotonic()
    result = box.run("sleep 20", timeout=1)
    assert result.timed_out and result.exit_code == -1
    assert time.monotonic() - started < 10


def test_tmp_is_the_sandboxes_own(box):
    name = f"/tmp/ccp-osb-test-{uuid.uuid4().hex}"
    assert box.run(f"echo artifact > {name} && cat {name}").stdout == "artifact\n"
    assert box.read_file(name) == "artifact\n"
    assert not Path(name).exists()


def test_a_missing_file_is_an_artifact_read_error(box):
    with pytest.raises(ArtifactReadError, match="404") as info:
        box.read_file("/tmp/never-written.txt")
    assert info.value.failure_class == "artifact_read_error"


def test_a_bad_image_fails_create(runtime, server):
    before = set(server.sandboxes)
    with pytest.raises(SandboxCreateError, match="IMAGE_PULL_FAILED") as info:
        runtime.create({}, image="opensandbox/does-not-exist:v0")
    assert info.value.failure_class == "sandbox_create_error"
    assert set(server.sandboxes) == before


def test_a_server_that_is_down_fails_create():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    runtime = OpenSandboxRuntime(f"http://127.0.0.1:{port}", max_retries=0)
    with pytest.raises(SandboxCreateError, match=f"127.0.0.1:{port}"):
        runtime.create({"FOO": "1"})


def test_the_api_key_is_honoured():
    with OpenSandboxServer(api_key="sk-test") as srv:
        with pytest.raises(SandboxCreateError, match="401"):
            OpenSandboxRuntime(srv.base_url).create({})
        box = OpenSandboxRuntime(srv.base_url, api_key="sk-test").create({})
        try:
            assert box.run("echo ok").stdout == "ok\n"
        finally:
            box.delete()


def test_delete_is_idempotent_and_kills_running_processes(runtime, server):
    box = runtime.create({})
    results: list[object] = []
    worker = threading.Thread(target=lambda: results.append(_run_or_error(box, "echo $$ > /tmp/pid; "
                                                                               "exec sleep 60")))
    worker.start()
    try:
        _wait_for(lambda: _readable(box, "/tmp/pid"))
        pid = int(box.read_file("/tmp/pid"))
        root = server.sandboxes[box.id].root
        box.delete()
        box.delete()
        worker.join(10)
        assert not worker.is_alive()
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
        assert box.id not in server.sandboxes and not root.exists()
        result = results[0]
        assert isinstance(result, SandboxError) or result.exit_code != 0
        with pytest.raises(SandboxError):
            box.run("true")
        with pytest.raises(ArtifactReadError):
            box.read_file("/tmp/pid")
    finally:
        box.delete()
        worker.join(10)


def _run_or_error(box, command):
    try:
        return box.run(command, timeout=60)
    except SandboxError as exc:
        return exc


def _readable(box, path):
    try:
        return bool(box.read_file(path).strip())
    except ArtifactReadError:
        return False


def test_join_output_rebuilds_lines():
    def msgs(*texts):
        return [OutputMessage(text=t, timestamp=0, is_error=False) for t in texts]

    assert join_output(msgs("a", "\n", "b")) == "a\n\nb\n"
    assert join_output([]) == ""
