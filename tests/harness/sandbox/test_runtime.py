"""The one interface every sandbox runtime implements (harness.sandbox.runtime): the runtime by
name with its options, the errors a run result reports by class, and a command's result."""
import pytest

from harness.sandbox.runtime import (
    ArtifactReadError,
    CommandResult,
    SandboxCreateError,
    SandboxError,
)

pytestmark = pytest.mark.quick


def test_each_error_names_the_class_a_run_result_reports():
    assert SandboxError("x").failure_class == "runtime_error"
    assert SandboxCreateError("x").failure_class == "sandbox_create_error"
    assert ArtifactReadError("x").failure_class == "artifact_read_error"
    assert issubclass(SandboxCreateError, SandboxError) and issubclass(ArtifactReadError, SandboxError)


def test_a_command_result_did_not_time_out_unless_it_says_so():
    done = CommandResult(0, "out", "")
    assert (done.exit_code, done.stdout, done.stderr, done.timed_out) == (0, "out", "", False)
    assert CommandResult(124, "", "late", timed_out=True).timed_out
