"""The `opensandbox` runtime: sandboxes through the official `opensandbox` SDK.

The server is either the real `opensandbox-server` (where a Docker engine exists) or ccp's own
compatible server (`harness.sandbox.opensandbox_server`, for CI); this module cannot tell them apart.
It uses the SDK's synchronous API (`SandboxSync`), so no event loop or thread of ours is involved.

SDK calls and the endpoints behind them:
    SandboxSync.create   POST /v1/sandboxes, GET /v1/sandboxes/{id}/endpoints/44772 (execd) and
                         /18080 (egress), then GET <execd>/ping until healthy
    commands.run         POST <execd>/command, an SSE stream of init/stdout/stderr/error/complete
    files.read_file      GET  <execd>/files/download?path=...
    kill                 DELETE /v1/sandboxes/{id}

Errors, drawn from the SDK's:
    create: any SandboxException (server down, bad image, not ready)  -> SandboxCreateError
    run:    any SandboxException                                      -> SandboxError
    read:   any failure (missing file, undecodable bytes, server gone) -> ArtifactReadError
    delete: never raises
"""
from __future__ import annotations

import re
import time
from collections.abc import Mapping
from datetime import timedelta

from opensandbox import SandboxSync
from opensandbox.config import ConnectionConfigSync
from opensandbox.exceptions import SandboxApiException, SandboxException
from opensandbox.models.execd import OutputMessage, RunCommandOpts
from opensandbox.transport.retry import RetryPolicy

from harness.sandbox.runtime import (
    ArtifactReadError,
    CommandResult,
    SandboxCreateError,
    SandboxError,
)

DEFAULT_IMAGE = "opensandbox/code-interpreter:v1.0.1"
DEFAULT_ENTRYPOINT = "/opt/opensandbox/code-interpreter.sh"
DEFAULT_TTL = 3600.0  # the sandbox's lifetime on the server; delete() normally ends it sooner
DEFAULT_REQUEST_TIMEOUT = 60.0
HEALTH_POLL = timedelta(milliseconds=200)
_LABEL_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def join_output(messages: list[OutputMessage]) -> str:
    """Rebuild a stream from execd's per-line events (a line arrives without its newline)."""
    return "".join(m.text if m.text.endswith("\n") else m.text + "\n" for m in messages)


def _label(name: str) -> str:
    """`name` as a valid metadata label value (the server validates them as Kubernetes labels)."""
    return _LABEL_UNSAFE.sub("-", name)[:63].strip("-_.") or "sandbox"


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SandboxApiException):
        return f"HTTP {exc.status_code}: {exc}"
    return f"{type(exc).__name__}: {exc}"


class OpenSandboxSandbox:
    """One OpenSandbox sandbox behind the runtime interface."""

    def __init__(self, sdk: SandboxSync) -> None:
        self._sdk = sdk
        self.id: str = sdk.id
        self._deleted = False

    def run(self, command: str, timeout: float = 120.0) -> CommandResult:
        """Run `command` (shell text, no TTY) and collect its exit code, stdout and stderr.

        execd kills the command's process group at `timeout`; that shows as exit code -1, and
        `timed_out` is set when a failing command used up its time.
        """
        if self._deleted:
            raise SandboxError(f"sandbox {self.id} is deleted")
        started = time.monotonic()
        try:
            execution = self._sdk.commands.run(
                command, opts=RunCommandOpts(timeout=timedelta(seconds=timeout)))
        except SandboxException as exc:
            raise SandboxError(f"sandbox {self.id}: command failed to run: {_describe(exc)}") from exc
        code = execution.exit_code if execution.exit_code is not None else -1
        timed_out = code != 0 and time.monotonic() - started >= timeout
        return CommandResult(code, join_output(execution.logs.stdout),
                             join_output(execution.logs.stderr), timed_out)

    def read_file(self, path: str) -> str:
        """The text of the file at `path` inside the sandbox."""
        if self._deleted:
            raise ArtifactReadError(f"sandbox {self.id} is deleted; cannot read {path}")
        try:
            return self._sdk.files.read_file(path)
        except SandboxException as exc:
            raise ArtifactReadError(f"sandbox {self.id}: cannot read {path}: {_describe(exc)}") from exc
        except UnicodeDecodeError as exc:
            raise ArtifactReadError(f"sandbox {self.id}: {path} is not UTF-8 text: {exc}") from exc

    def delete(self) -> None:
        """Kill the sandbox (ending its processes) and close the SDK's connections; idempotent."""
        if self._deleted:
            return
        self._deleted = True
        try:
            self._sdk.kill()
        except Exception:  # already gone, or the server is down: nothing left to clean up here
            pass
        finally:
            self._sdk.close()

    def __enter__(self) -> OpenSandboxSandbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.delete()


class OpenSandboxRuntime:
    """Creates sandboxes on an OpenSandbox server through the official SDK."""

    name = "opensandbox"

    def __init__(self, server_url: str | None = None, api_key: str | None = None, *,
                 image: str = DEFAULT_IMAGE, entrypoint: str | list[str] = DEFAULT_ENTRYPOINT,
                 ttl: float = DEFAULT_TTL, request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
                 max_retries: int = 3) -> None:
        self.server_url = server_url
        self._api_key = api_key
        self.image = image
        self.entrypoint = [entrypoint] if isinstance(entrypoint, str) else list(entrypoint)
        self.ttl = ttl
        self.request_timeout = request_timeout
        self.max_retries = max_retries

    def __repr__(self) -> str:
        key = "'**********'" if self._api_key else None
        return f"OpenSandboxRuntime(server_url={self.server_url!r}, api_key={key}, image={self.image!r})"

    def _config(self, timeout: float) -> ConnectionConfigSync:
        # Metrics off: the SDK reports create latency from a fire-and-forget thread.
        return ConnectionConfigSync(
            domain=self.server_url, api_key=self._api_key,
            request_timeout=timedelta(seconds=max(timeout, self.request_timeout)),
            retry_policy=RetryPolicy(max_retries=self.max_retries), disable_metrics=True)

    def create(self, env: Mapping[str, str], image: str | None = None, name: str | None = None,
               timeout: float = 300.0) -> OpenSandboxSandbox:
        """A running sandbox with `env`; `timeout` bounds the create (an image pull can take minutes)."""
        image = image or self.image
        try:
            sdk = SandboxSync.create(
                image, env=dict(env), entrypoint=self.entrypoint,
                timeout=timedelta(seconds=self.ttl), ready_timeout=timedelta(seconds=timeout),
                metadata={"ccp-name": _label(name)} if name else None,
                connection_config=self._config(timeout), health_check_polling_interval=HEALTH_POLL)
        except SandboxException as exc:
            where = self.server_url or "the SDK's default server"
            raise SandboxCreateError(
                f"opensandbox create failed (image {image!r} at {where}): {_describe(exc)}") from exc
        return OpenSandboxSandbox(sdk)
