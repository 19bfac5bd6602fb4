"""The operators' daily controls: a background shim per profile, its exports, its log, one probe.

Owns the verbs built on a profile's run files (`proxy.config.profiles.RunFiles`: `ccp.pid`, `ccp.port`
written by `ccp serve --port-file`, `ccp-serve.log`): `up`, `down`, `restart`, `ps`, `env`, `logs`,
`probe` and `shell-init` (`logs` lives in proxy.cli.logview). Every wait polls a condition until a deadline.

Errors print as `Type: message`: `AlreadyRunning`, `PortBusy`, `BindError`, `StartFailed`,
`NotRunning`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO, TypeVar

import httpx

from proxy.config.load import load_settings
from proxy.config.profiles import (
    RunFiles,
    bind_problem,
    pid_alive,
    read_int,
    running_pid,
)
from proxy.config.settings import Settings

START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0
POLL = 0.05
LOCALHOST = "127.0.0.1"


# ---------------------------------------------------------------- process state
def current_port(settings: Settings, files: RunFiles) -> int:
    """The running shim's port (port file), else the profile's port."""
    port = read_int(files.port) if running_pid(files) else None
    return port or settings.default_port


def healthy(port: int, host: str = LOCALHOST) -> bool:
    try:
        return (
            httpx.get(f"http://{host}:{port}/healthz", timeout=2.0, trust_env=False).status_code
            == 200
        )
    except httpx.HTTPError:
        return False


_T = TypeVar("_T")


def wait_for(predicate: Callable[[], _T], timeout: float) -> _T:
    """Poll `predicate` until it is truthy (returns it) or `timeout` passes (returns None)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(POLL)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# ---------------------------------------------------------------- env, banner
def exports(port: int) -> list[str]:
    """Shell lines that point Claude Code at the shim (no secret is ever printed)."""
    return [
        f"export ANTHROPIC_BASE_URL=http://{LOCALHOST}:{port}",
        "export NO_PROXY=127.0.0.1,localhost",
        "export CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1",
    ]


def routing_summary(settings: Settings) -> str:
    """Where haiku and sonnet really go: pause, override, licence and credentials included."""
    from proxy.server.readiness import describe_destinations

    return describe_destinations(settings)


def banner(settings: Settings, host: str, port: int, pid: int) -> str:
    return (
        f"ccp up: http://{host}:{port} pid {pid} profile {settings.profile} "
        f"logs {settings.logs_dir} — {routing_summary(settings)}"
    )


# ---------------------------------------------------------------- up / down / restart / ps / env
def up(
    settings: Settings,
    port: int | None = None,
    host: str = LOCALHOST,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Start `ccp serve` detached, wait until /healthz answers, print the banner and exports."""
    out, err = out or sys.stdout, err or sys.stderr
    files = RunFiles(Path(settings.logs_dir))
    files.logs_dir.mkdir(parents=True, exist_ok=True)
    pid = running_pid(files)
    if pid:
        print(
            f"AlreadyRunning: ccp is already running (pid {pid}) on port "
            f"{read_int(files.port) or '?'} for profile {settings.profile}; "
            f"`ccp down` or `ccp restart` first",
            file=err,
        )
        return 1
    files.clear()  # stale files from a shim that died
    port = settings.default_port if port is None else port
    problem = bind_problem(host, port, "pick another with --port or stop what holds it")
    if problem:
        print(problem, file=err)
        return 1
    with open(files.log, "ab") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "proxy",
                "serve",
                "--host",
                host,
                "--port",
                str(port),
                "--port-file",
                str(files.port),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    files.pid.write_text(f"{proc.pid}\n")

    def answering() -> int | None:
        if proc.poll() is not None:
            raise ChildProcessError(f"exited with code {proc.returncode}")
        bound = read_int(files.port)
        return bound if bound and healthy(bound, _connect_host(host)) else None

    try:
        bound = wait_for(answering, START_TIMEOUT)
        problem = None if bound else f"no answer on /healthz within {START_TIMEOUT:.0f}s"
    except ChildProcessError as exc:
        bound, problem = None, str(exc)
    if not bound:
        _stop_pid(proc.pid)
        proc.wait()
        files.clear()
        print(
            f"StartFailed: the shim {problem}; last lines of {files.log}:\n{_tail(files.log)}",
            file=err,
        )
        return 1
    proc.returncode = 0  # detached on purpose: it outlives us, so no "still running" warning
    print(banner(settings, host, int(bound), proc.pid), file=out)
    print("\n".join(exports(int(bound))), file=out)
    return 0


def _connect_host(host: str) -> str:
    return LOCALHOST if host in ("0.0.0.0", "") else host


def _stop_pid(pid: int, timeout: float = STOP_TIMEOUT) -> bool:
    """SIGTERM, wait until gone, SIGKILL after `timeout`. True when it stopped politely."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if wait_for(lambda: not pid_alive(pid), timeout):
        return True
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not pid_alive(pid), 5.0)
    return False


def down(settings: Settings, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    files = RunFiles(Path(settings.logs_dir))
    pid = running_pid(files)
    if not pid:
        files.clear()
        print(f"ccp down: not running (profile {settings.profile})", file=out)
        return 0
    port = read_int(files.port)
    polite = _stop_pid(pid)
    files.clear()
    how = "stopped" if polite else f"killed (no exit within {STOP_TIMEOUT:.0f}s of SIGTERM)"
    print(f"ccp down: {how} pid {pid} (port {port or '?'}, profile {settings.profile})", file=out)
    return 0


def _host_port_parser(prog: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument(
        "port_arg",
        nargs="?",
        type=int,
        metavar="PORT",
        help="port to bind, as the operators type it (`ccp up 8082`); same as --port",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=None,
        help="port to bind (default: the profile's port); 0 lets the OS choose",
    )
    parser.add_argument("--host", default=LOCALHOST, help="address to bind (default %(default)s)")
    return parser


def _port_of(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int | None:
    """PORT or --port (both given must agree), else None (the profile's port)."""
    if args.port_arg is not None and args.port is not None and args.port_arg != args.port:
        parser.error(f"PORT {args.port_arg} and --port {args.port} disagree")
    port = args.port if args.port is not None else args.port_arg
    if port is not None and not 0 <= port <= 65535:
        parser.error(f"port {port}: expected 0-65535")
    return port


def up_main(argv: list[str]) -> int:
    parser = _host_port_parser("ccp up", "Start the shim in the background.")
    args = parser.parse_args(argv)
    return up(load_settings(), _port_of(parser, args), args.host)


def down_main(argv: list[str]) -> int:
    argparse.ArgumentParser(prog="ccp down", description="Stop the background shim.").parse_args(
        argv
    )
    return down(load_settings())


def restart_main(argv: list[str]) -> int:
    parser = _host_port_parser(
        "ccp restart",
        "Stop and start the background shim; keeps the previous port unless a port is given.",
    )
    args = parser.parse_args(argv)
    settings = load_settings()
    files = RunFiles(Path(settings.logs_dir))
    port = _port_of(parser, args)
    if port is None and running_pid(files):
        port = read_int(files.port)
    down(settings)
    return up(settings, port, args.host)


def ps_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="ccp ps", description="Is the background shim running? Exit 0 when it is, 1 when not."
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="print nothing, exit code only")
    args = parser.parse_args(argv)
    settings = load_settings()
    files = RunFiles(Path(settings.logs_dir))
    pid = running_pid(files)
    port = read_int(files.port) if pid else settings.default_port
    if not args.quiet:
        state = f"running pid {pid}" if pid else "not running"
        # a shim whose run files are elsewhere (another home); `port` is then the default one
        if not pid and healthy(settings.default_port):
            state = (
                f"not running from this home, but a shim answers on port {port} (started "
                f"with another CCP_HOME, or its pid file was removed; `ccp down` cannot stop it)"
            )
        print(
            f"ccp: {state} port {port} profile {settings.profile} logs {settings.logs_dir}"
            + (f" url http://{LOCALHOST}:{port}" if pid else "")
            + f" home {settings.home or '.'} ({settings.home_source or 'default'})"
        )
    return 0 if pid else 1


def env_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="ccp env", description='Exports for the shell: eval "$(ccp env)".'
    )
    parser.add_argument("--unset", action="store_true", help="print the line that undoes it")
    args = parser.parse_args(argv)
    if args.unset:
        print("unset ANTHROPIC_BASE_URL")
        return 0
    settings = load_settings()
    print("\n".join(exports(current_port(settings, RunFiles(Path(settings.logs_dir))))))
    if client_credential(os.environ) is None:
        print(NO_CLIENT_CREDENTIAL, file=sys.stderr)
    return 0


# Where Claude Code finds a credential (without one it stops with "Not logged in · Please run /login"
# before it sends anything, so the shim never sees the turn)
CLIENT_CREDENTIAL_VARS = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN")
NO_CLIENT_CREDENTIAL = (
    "ccp env: claude has no credential in this shell (no ANTHROPIC_API_KEY, ANTHROPIC_AUTH_TOKEN or "
    'CLAUDE_CODE_OAUTH_TOKEN, no login in ~/.claude): it will stop with "Not logged in" and send '
    "nothing. Set ANTHROPIC_API_KEY=<your Anthropic key> (the shim passes it to the anthropic lane "
    "only; zai gets ZAI_API_KEY), or run `claude` once and /login."
)


def client_credential(env) -> str | None:
    """Which credential Claude Code would use in a shell with `env`, or None."""
    for name in CLIENT_CREDENTIAL_VARS:
        if env.get(name, "").strip():
            return name
    home = Path(env.get("CLAUDE_CONFIG_DIR") or Path(env.get("HOME") or Path.home()) / ".claude")
    if (home / ".credentials.json").is_file():
        return str(home / ".credentials.json")
    try:
        helper = json.loads((home / "settings.json").read_text(encoding="utf-8")).get(
            "apiKeyHelper"
        )
    except (OSError, ValueError, AttributeError):
        helper = None
    return "apiKeyHelper" if helper else None


# ---------------------------------------------------------------- probe
# ---------------------------------------------------------------- shell-init
# What ccc-on sets; ccc-off puts each back as it was before the first ccc-on (value, or unset).
SHELL_VARS = ("ANTHROPIC_BASE_URL", "NO_PROXY", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC")

SHELL_FUNCTIONS = r"""# ccp shell functions — add to ~/.bashrc or ~/.zshrc:  eval "$(ccp shell-init)"
# CCP_PROFILE=dev keeps a dev shim apart (own port and logs folder). Ports are positional, as in
# `ccc-on 8082` and `ccc-restart 8182`.
_ccp() { {ccp} "$@"; }
_ccp_save() {
  [ -n "${_CCP_SAVED:-}" ] && return 0
  for _ccp_v in {vars}; do
    if eval "[ -n \"\${$_ccp_v+x}\" ]"; then eval "_CCP_WAS_$_ccp_v=\"\${$_ccp_v}\""
    else eval "_CCP_WAS_$_ccp_v=_ccp_unset_"; fi
  done
  _CCP_SAVED=1
}
_ccp_restore() {
  if [ -z "${_CCP_SAVED:-}" ]; then eval "$(_ccp env --unset)"; return 0; fi
  for _ccp_v in {vars}; do
    eval "_ccp_was=\"\${_CCP_WAS_$_ccp_v}\""
    if [ "$_ccp_was" = _ccp_unset_ ]; then unset "$_ccp_v"; else export "$_ccp_v=$_ccp_was"; fi
    unset "_CCP_WAS_$_ccp_v"
  done
  unset _CCP_SAVED _ccp_v _ccp_was
}
ccc-on() {
  if _ccp ps -q; then _ccp ps; else _ccp up "$@" >&2 || return; fi
  _ccp_save
  eval "$(_ccp env)"
  _ccp usage --banner >&2 || true
}
ccc-off() { _ccp down; _ccp_restore; }
ccc-status() {
  _ccp ps
  echo "ANTHROPIC_BASE_URL=${ANTHROPIC_BASE_URL:-<unset>} CCP_PROFILE=${CCP_PROFILE:-default}"
}
ccc-logs() { _ccp logs --follow "$@"; }
ccc-restart() { _ccp restart "$@" >&2 || return; _ccp_save; eval "$(_ccp env)"; }
ccp-haiku() { _ccp probe haiku "${*:-Say hi}"; }
ccp-sonnet() { _ccp probe sonnet "${*:-Say hi}"; }
"""


def shell_init_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="ccp shell-init", description='Shell functions: eval "$(ccp shell-init)".'
    )
    parser.add_argument(
        "--shell",
        default="bash",
        choices=("bash", "zsh"),
        help="the shell the functions are for (both read the same text)",
    )
    parser.parse_args(argv)
    ccp = " ".join(shlex.quote(part) for part in (sys.executable, "-m", "proxy"))
    print(SHELL_FUNCTIONS.replace("{ccp}", ccp).replace("{vars}", " ".join(SHELL_VARS)), end="")
    return 0
