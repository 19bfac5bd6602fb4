"""Profiles: named setups that keep dev and prod shims apart (`CCP_PROFILE`).

A profile owns two things: the port `ccp serve` / `ccp up` bind when no `--port` is given, and the
logs folder (pid file, port file, usage log) when `CCP_LOGS_DIR` is not set.

| profile            | port                                   | logs            |
|--------------------|----------------------------------------|-----------------|
| `default`, `prod`  | 18080                                  | `logs`          |
| `dev`              | 18180                                  | `logs/dev`      |
| any other `<name>` | 18080 + 200 + crc32(name) % 800        | `logs/<name>`   |

Other names therefore land on 18280–19079: stable across runs and machines, never on the built-in
ports (18080, 18180) nor on 18090, where the README runs a mock upstream. Names are `[a-z0-9_-]+`
(at most 40 characters) because they become a folder name. The table is pure (no I/O, no
environment); `Settings` turns its ValueError into a ConfigError naming CCP_PROFILE.

Also owned here: the run files a profile's background shim (`ccp up`) keeps in its logs folder —
`ccp.pid`, `ccp.port`, `ccp-serve.log` — and the checks that say whether that shim still runs
(a stale pid file, a zombie or a recycled pid does not count) and whether a port is free.
"""

from __future__ import annotations

import errno
import os
import re
import socket
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from proxy.core.record import USAGE_FILE

DEFAULT_PROFILE = "default"
BASE_PORT = 18080
CUSTOM_PORT_OFFSET = 200
CUSTOM_PORT_SPAN = 800
_NAME_RE = re.compile(r"^[a-z0-9_-]{1,40}$")


class Profile(NamedTuple):
    name: str
    port: int
    logs_dir: str


BUILTIN: dict[str, Profile] = {
    "default": Profile("default", BASE_PORT, "logs"),
    "prod": Profile("prod", BASE_PORT, "logs"),
    "dev": Profile("dev", 18180, "logs/dev"),
}


def custom_port(name: str) -> int:
    """The stable port of a profile that is not built in (see the table above)."""
    return BASE_PORT + CUSTOM_PORT_OFFSET + zlib.crc32(name.encode()) % CUSTOM_PORT_SPAN


def resolve_profile(name: str) -> Profile:
    """The profile called `name` (blank means `default`); ValueError on a name that is not usable."""
    name = name.strip() or DEFAULT_PROFILE
    if name in BUILTIN:
        return BUILTIN[name]
    if not _NAME_RE.match(name):
        raise ValueError(
            f"{name!r}: expected a profile name of a-z, 0-9, '_' or '-' "
            f"(at most 40 characters), e.g. dev or prod"
        )
    return Profile(name, custom_port(name), f"logs/{name}")


@dataclass(frozen=True)
class RunFiles:
    """Where a background shim keeps its pid, port and output (inside the logs folder)."""

    logs_dir: Path

    @property
    def pid(self) -> Path:
        return self.logs_dir / "ccp.pid"

    @property
    def port(self) -> Path:
        return self.logs_dir / "ccp.port"

    @property
    def log(self) -> Path:
        return self.logs_dir / "ccp-serve.log"

    @property
    def usage(self) -> Path:
        return self.logs_dir / USAGE_FILE

    def clear(self) -> None:
        self.pid.unlink(missing_ok=True)
        self.port.unlink(missing_ok=True)


def read_int(path: Path) -> int | None:
    """The integer in a pid/port file, or None when it is missing or not a number."""
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def pid_alive(pid: int) -> bool:
    """True while `pid` runs (a zombie, which nobody reaped yet, counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # Linux: the state letter follows the parenthesised command name
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _is_serve(pid: int) -> bool:
    """Guards against a recycled pid: on Linux the command line must be a `serve`."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # no /proc: trust the pid file
    return b"serve" in cmdline.split(b"\0")


def running_pid(files: RunFiles) -> int | None:
    """The pid of this profile's background shim, or None (a stale pid file does not count)."""
    pid = read_int(files.pid)
    if pid and pid_alive(pid) and _is_serve(pid):
        return pid
    return None


def bind_problem(host: str, port: int, hint: str) -> str | None:
    """One line saying why `host:port` cannot be bound (`PortBusy: …`, `BindError: …`), or None;
    port 0 (the OS chooses) is always fine. `hint` ends a PortBusy line: what the reader can do."""
    try:
        if not port or port_free(host, port):
            return None
    except OSError as exc:
        return f"BindError: cannot bind {host}:{port}: {exc.strerror or exc}"
    return f"PortBusy: {host}:{port} is in use; {hint}"


def port_free(host: str, port: int) -> bool:
    """Is `host:port` free to bind (SO_REUSEADDR, as the shim binds)? Other bind errors
    (an address that is not local, a privileged port) raise OSError."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            raise
    return True
