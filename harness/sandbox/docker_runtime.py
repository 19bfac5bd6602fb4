"""The `docker` runtime: one container per sandbox through the `docker` SDK, no OpenSandbox server.

    create   containers.run(image, entrypoint, environment=env, network_mode="host", detach=True)
    run      exec_run(["timeout", ..., "bash", "-c", command], demux=True): exit code, stdout, stderr
    read     get_archive(path): the file out of the tar stream
    delete   remove(force=True), then close the client

Host networking lets the sandbox reach the shim on the host's 127.0.0.1. The default entrypoint only
keeps the container alive (commands arrive through exec), so any image with bash and coreutils works.
`run` bounds a command with coreutils `timeout` (exit 124, or 137 after the KILL grace) since
exec_run has no timeout of its own. Commands have no TTY.

Errors: no engine or a failed pull/start -> SandboxCreateError; an exec failure -> SandboxError;
a missing or unreadable file -> ArtifactReadError; delete never raises.
"""
from __future__ import annotations

import io
import re
import socket
import tarfile
import time
import uuid
from collections.abc import Mapping
from typing import Any

import docker
from docker.errors import DockerException, NotFound
from docker.utils import kwargs_from_env

from harness.sandbox.runtime import (
    ArtifactReadError,
    CommandResult,
    SandboxCreateError,
    SandboxError,
)

DEFAULT_IMAGE = "opensandbox/code-interpreter:v1.0.1"
DEFAULT_ENTRYPOINT = ("sleep", "infinity")
DEFAULT_API_TIMEOUT = 900  # seconds per Docker API call; a pull can take minutes
KILL_GRACE = 5  # seconds between timeout's TERM and its KILL
TIMEOUT_EXIT_CODES = (124, 137)
LABEL = "ccp.sandbox"
DEFAULT_SOCKET = "unix:///var/run/docker.sock"
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def probe_unix_socket(base_url: str, timeout: float = 2.0) -> None:
    """Raise OSError unless the unix socket in `base_url` accepts a connection (no-op for tcp).

    The docker SDK leaks its socket when a unix connect fails, which a ResourceWarning turns into
    noise (or a test error), so an absent engine is detected here first.
    """
    for prefix in ("http+unix://", "unix://"):
        if base_url.startswith(prefix):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(timeout)
                sock.connect(base_url[len(prefix):])
            return


def timeout_argv(command: str, timeout: float) -> list[str]:
    """`command` under bash, bounded by coreutils `timeout` (whole seconds, at least 1)."""
    seconds = max(1, int(round(timeout)))
    return ["timeout", "-k", str(KILL_GRACE), str(seconds), "bash", "-c", command]


def file_from_tar(data: bytes, path: str) -> bytes:
    """The content of the single regular file in the tar `get_archive(path)` returned."""
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for member in tar.getmembers():
            if member.isfile():
                handle = tar.extractfile(member)
                if handle is not None:
                    return handle.read()
    raise ArtifactReadError(f"{path} is not a regular file")


class DockerSandbox:
    """One container behind the runtime interface."""

    def __init__(self, client: docker.DockerClient, container: Any) -> None:
        self._client = client
        self._container = container
        self.id: str = container.id
        self._deleted = False

    def run(self, command: str, timeout: float = 120.0) -> CommandResult:
        """Run `command` with bash (no TTY); collect exit code, stdout and stderr."""
        if self._deleted:
            raise SandboxError(f"sandbox {self.id[:12]} is deleted")
        started = time.monotonic()
        try:
            result = self._container.exec_run(timeout_argv(command, timeout), demux=True, tty=False)
        except DockerException as exc:
            raise SandboxError(f"sandbox {self.id[:12]}: exec failed: {exc}") from exc
        out, err = result.output if result.output else (None, None)
        code = result.exit_code if result.exit_code is not None else -1
        timed_out = code in TIMEOUT_EXIT_CODES and time.monotonic() - started >= timeout - 0.5
        return CommandResult(code, (out or b"").decode("utf-8", "replace"),
                             (err or b"").decode("utf-8", "replace"), timed_out)

    def read_file(self, path: str) -> str:
        """The text of the file at `path` inside the container."""
        if self._deleted:
            raise ArtifactReadError(f"sandbox {self.id[:12]} is deleted; cannot read {path}")
        try:
            stream, _stat = self._container.get_archive(path)
            data = file_from_tar(b"".join(stream), path)
            return data.decode("utf-8")
        except NotFound as exc:
            raise ArtifactReadError(f"sandbox {self.id[:12]}: no such file: {path}") from exc
        except (DockerException, tarfile.TarError, UnicodeDecodeError) as exc:
            raise ArtifactReadError(f"sandbox {self.id[:12]}: cannot read {path}: {exc}") from exc

    def delete(self) -> None:
        """Remove the container (killing its processes) and close the client; idempotent."""
        if self._deleted:
            return
        self._deleted = True
        try:
            self._container.remove(force=True)
        except DockerException:  # already gone, or the engine went away
            pass
        finally:
            self._client.close()


class DockerRuntime:
    """Creates containers on a Docker engine (DOCKER_HOST, or `base_url`)."""

    name = "docker"

    def __init__(self, *, image: str = DEFAULT_IMAGE,
                 entrypoint: str | list[str] | tuple[str, ...] = DEFAULT_ENTRYPOINT,
                 base_url: str | None = None, api_timeout: int = DEFAULT_API_TIMEOUT,
                 network_mode: str = "host") -> None:
        self.image = image
        self.entrypoint = [entrypoint] if isinstance(entrypoint, str) else list(entrypoint)
        self.base_url = base_url
        self.api_timeout = api_timeout
        self.network_mode = network_mode

    def _client(self) -> docker.DockerClient:
        options = kwargs_from_env()  # DOCKER_HOST, DOCKER_TLS_VERIFY, DOCKER_CERT_PATH, as from_env
        if self.base_url:
            options["base_url"] = self.base_url
        base_url = options.setdefault("base_url", DEFAULT_SOCKET)
        try:
            probe_unix_socket(base_url)
        except OSError as exc:
            raise SandboxCreateError(f"docker engine not reachable: cannot connect to {base_url}: "
                                     f"{exc.strerror or exc}") from exc
        try:
            client = docker.DockerClient(timeout=self.api_timeout, **options)
        except DockerException as exc:
            raise SandboxCreateError(f"docker engine not reachable: {exc}") from exc
        try:
            client.ping()
        except DockerException as exc:
            client.close()
            raise SandboxCreateError(f"docker engine not reachable: {exc}") from exc
        return client

    def create(self, env: Mapping[str, str], image: str | None = None, name: str | None = None,
               timeout: float = 300.0) -> DockerSandbox:
        """A running container with `env` (the image is pulled when missing)."""
        image = image or self.image
        client = self._client()
        suffix = uuid.uuid4().hex[:8]
        cname = f"ccp-{_NAME_UNSAFE.sub('-', name).strip('-.')[:40]}-{suffix}" if name else f"ccp-{suffix}"
        try:
            container = client.containers.run(
                image, entrypoint=self.entrypoint, environment=dict(env),
                network_mode=self.network_mode, detach=True, name=cname,
                labels={LABEL: "1", "ccp.name": name or ""})
        except DockerException as exc:
            client.close()
            raise SandboxCreateError(f"docker create failed (image {image!r}): {exc}") from exc
        return DockerSandbox(client, container)
