"""The one small interface every sandbox runtime implements.

    runtime = get_runtime("local")                      # or "opensandbox", "docker"
    box = runtime.create(env={...}, image=..., name=...)   # raises SandboxCreateError
    result = box.run("claude --version", timeout=60)    # CommandResult(exit_code, stdout, stderr)
    text = box.read_file("/tmp/claude_result.txt")      # raises ArtifactReadError
    box.delete()                                        # idempotent, never raises

A runtime decides where the sandbox's processes run; the task code never knows which one it has.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple, Protocol


class SandboxError(Exception):
    """Base of the runtime errors; `failure_class` is what a run result reports."""

    failure_class = "runtime_error"


class SandboxCreateError(SandboxError):
    failure_class = "sandbox_create_error"


class ArtifactReadError(SandboxError):
    failure_class = "artifact_read_error"


class CommandResult(NamedTuple):
    exit_code: int
    stdout: str
    stderr: str
    timed_out: bool = False


class Sandbox(Protocol):
    id: str

    def run(self, command: str, timeout: float = 120.0) -> CommandResult: ...

    def read_file(self, path: str) -> str: ...

    def delete(self) -> None: ...


class Runtime(Protocol):
    name: str

    def create(self, env: Mapping[str, str], image: str | None = None,
               name: str | None = None, timeout: float = 300.0) -> Sandbox: ...
