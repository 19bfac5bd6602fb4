"""The `docker` runtime: clear failures without an engine; the full cycle where one is reachable."""
import io
import tarfile
import uuid

import pytest

from harness.sandbox.docker_runtime import DockerRuntime, file_from_tar, timeout_argv
from harness.sandbox.runtime import ArtifactReadError, SandboxCreateError
from harness.sandbox.runtimes import get_runtime


def _engine_reachable() -> bool:
    try:
        DockerRuntime()._client().close()
    except SandboxCreateError:
        return False
    return True


needs_engine = pytest.mark.skipif(not _engine_reachable(),
                                  reason="no Docker engine reachable (docker.from_env().ping() failed)")


@pytest.mark.quick
def test_no_engine_fails_create_with_a_clear_message(tmp_path):
    runtime = get_runtime("docker", base_url=f"unix://{tmp_path}/no-docker.sock")
    with pytest.raises(SandboxCreateError, match="^docker engine not reachable: ") as info:
        runtime.create({"FOO": "1"})
    assert info.value.failure_class == "sandbox_create_error"


@pytest.mark.quick
def test_a_closed_tcp_port_fails_create_too(unused_tcp_port):
    with pytest.raises(SandboxCreateError, match="^docker engine not reachable: "):
        DockerRuntime(base_url=f"tcp://127.0.0.1:{unused_tcp_port}").create({})


@pytest.mark.quick
def test_timeout_argv_bounds_the_command():
    assert timeout_argv("echo hi", 0.2) == ["timeout", "-k", "5", "1", "bash", "-c", "echo hi"]
    assert timeout_argv("x", 90.4)[3] == "90"


@pytest.mark.quick
def test_file_from_tar_reads_the_single_file():
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("result.txt")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"ok\n"))
    assert file_from_tar(buf.getvalue(), "/tmp/result.txt") == b"ok\n"
    empty = io.BytesIO()
    with tarfile.open(fileobj=empty, mode="w"):
        pass
    with pytest.raises(ArtifactReadError, match="not a regular file"):
        file_from_tar(empty.getvalue(), "/tmp")


@pytest.fixture
def unused_tcp_port():
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@needs_engine
@pytest.mark.sandbox
def test_full_cycle_on_a_real_engine():
    box = DockerRuntime(image="bash:5").create({"FOO": "from create"}, name="ccp test")
    try:
        assert box.run("echo $FOO; echo err >&2; exit 3") == (3, "from create\n", "err\n", False)
        name = f"/tmp/ccp-{uuid.uuid4().hex}"
        assert box.run(f"echo artifact > {name}").exit_code == 0
        assert box.read_file(name) == "artifact\n"
        with pytest.raises(ArtifactReadError):
            box.read_file("/tmp/never-written")
        assert box.run("sleep 10", timeout=1).timed_out
    finally:
        box.delete()
        box.delete()
