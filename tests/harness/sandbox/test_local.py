import pytest

from harness.sandbox.local import LocalRuntime, map_tmp
from harness.sandbox.runtime import ArtifactReadError, SandboxCreateError
from harness.sandbox.runtimes import get_runtime

pytestmark = pytest.mark.quick


def test_env_exit_codes_and_own_tmp(tmp_path):
    box = LocalRuntime(base_dir=tmp_path).create({"FOO": "bar"}, name="t")
    try:
        r = box.run("echo $FOO; echo oops >&2; exit 4")
        assert (r.exit_code, r.stdout, r.stderr.strip()) == (4, "bar\n", "oops")
        assert box.run("echo hello > /tmp/ccp-local-test.txt").exit_code == 0
        assert box.read_file("/tmp/ccp-local-test.txt") == "hello\n"
        with pytest.raises(ArtifactReadError, match="missing.txt"):
            box.read_file("/tmp/missing.txt")
        slow = box.run("sleep 5", timeout=0.2)
        assert slow.timed_out and slow.exit_code == 124
    finally:
        box.delete()
    assert not box.root.exists()
    box.delete()  # idempotent


def test_create_error_and_mapping(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(SandboxCreateError):
        LocalRuntime(base_dir=tmp_path / "f" / "sub").create({})
    assert map_tmp("cat /tmp/a /tmp/b", tmp_path) == f"cat {tmp_path}/tmp/a {tmp_path}/tmp/b"
    with pytest.raises(ValueError, match="unknown sandbox runtime"):
        get_runtime("vm")
