"""`ccp doctor`: what is missing for each path, on one screen.

Owns the checks and their verdicts, grouped by the path they serve:
- `mock repro` — python, the settings parse, the python packages, logs and results folders writable;
- `real API`   — the lane keys (by NAME only, never a value), ALLOW_REAL_API, curl;
- `CLI probes` — the `claude` CLI (project's `.tools/claude` first, then PATH) and its version,
  node and npm, the profile's port (free, or held by this profile's ccp);
- `mitm mode`  — the mitmproxy library `ccp mitm` runs on.
Each check is `ok`, `warn` (works, but not for everything), `missing` (a tool or key is absent) or
`fail` (something is broken: settings, an unwritable folder). Exit 0 when the mock repro path is
fully ok, else 1. Settings stays the only reader of the environment; tools are found via PATH.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple, TextIO

from proxy.config.home import PACKAGE_DIR
from proxy.config.load import load_settings
from proxy.config.profiles import RunFiles, port_free, read_int, running_pid
from proxy.config.settings import Settings
from proxy.core.parse import ConfigError
from proxy.sinks.store import shown_target

PROJECT_ROOT = PACKAGE_DIR.parent
PROJECT_CLAUDE = PROJECT_ROOT / ".tools" / "claude" / "node_modules" / ".bin" / "claude"
GROUPS = ("mock repro", "real API", "CLI probes", "mitm mode")
PACKAGES = ("aiohttp", "httpx", "anthropic", "pandas", "yaml", "jinja2")
VERSION_TIMEOUT = 20.0
_STYLES = {"ok": "green", "warn": "yellow", "missing": "red", "fail": "bold red"}


class Check(NamedTuple):
    group: str
    name: str
    status: str  # ok | warn | missing | fail
    detail: str
    hint: str = ""


def version_of(cmd: list[str], timeout: float = VERSION_TIMEOUT) -> str | None:
    """The first line a tool prints for `--version`, or None when it does not run."""
    try:
        done = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.SubprocessError):
        return None
    text = (done.stdout or done.stderr).strip()
    if done.returncode != 0 or not text:
        return None
    first = text.splitlines()[0]
    return " ".join(first.split()[:2]) if first.startswith("curl ") else first[:60]


def find_claude() -> str | None:
    """The project's own `claude` (installed by `make claude`) first, then PATH."""
    return str(PROJECT_CLAUDE) if PROJECT_CLAUDE.exists() else shutil.which("claude")


def writable(path: Path) -> tuple[bool, str]:
    """Can files be created in `path` (or, if it does not exist yet, can it be created)?"""
    if path.is_dir():
        try:
            with tempfile.NamedTemporaryFile(dir=path, prefix=".ccp-doctor-"):
                return True, f"{path} writable"
        except OSError as exc:
            return False, f"{path}: {exc.strerror or exc}"
    if path.exists():
        return False, f"{path} exists and is not a folder"
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if parent.is_dir() and writable(parent)[0]:
        return True, f"{path} will be created"
    return False, f"{path} cannot be created under {parent}"


def _tool(group: str, name: str, path: str | None, version: str | None, hint: str) -> Check:
    if not path:
        return Check(group, name, "missing", "not found", hint)
    if not version:
        return Check(group, name, "fail", f"{path} does not answer --version", hint)
    return Check(group, name, "ok", f"{version} ({path})")


def run_checks(settings: Settings | None, error: str | None = None) -> list[Check]:
    """Every check, in display order. `settings` is None when the environment did not parse."""
    checks: list[Check] = []
    mock, real, cli, mitm = GROUPS
    py = ".".join(map(str, sys.version_info[:3]))
    checks.append(
        Check(
            mock,
            "python",
            "ok" if sys.version_info >= (3, 11) else "fail",
            py,
            "" if sys.version_info >= (3, 11) else "ccp needs Python 3.11+",
        )
    )
    if settings is None:
        checks.append(
            Check(
                mock,
                "settings",
                "fail",
                error or "did not parse",
                "fix the variable named above (ccp serve would exit 2)",
            )
        )
        settings = Settings()
    else:
        checks.append(
            Check(
                mock,
                "settings",
                "ok",
                f"profile {settings.profile}, port "
                f"{settings.default_port}, logs {settings.logs_dir}",
            )
        )
        checks.append(
            Check(
                mock,
                "state home",
                "ok",
                f"{settings.home} ({settings.home_source}); "
                f"store {shown_target(settings.store_target)}, config home {settings.config_home or '-'}",
                ""
                if settings.home_source == "CCP_HOME"
                else "the same from any folder; CCP_HOME=DIR moves it",
            )
        )
    absent = [name for name in PACKAGES if importlib.util.find_spec(name) is None]
    checks.append(
        Check(
            mock,
            "packages",
            "missing" if absent else "ok",
            f"missing {', '.join(absent)}" if absent else ", ".join(PACKAGES),
            "pip install -e '.[dev]' (make venv)" if absent else "",
        )
    )
    for name, folder in (
        ("logs folder", settings.logs_dir),
        ("results folder", settings.results_dir),
    ):
        ok, detail = writable(Path(folder))
        checks.append(
            Check(
                mock,
                name,
                "ok" if ok else "fail",
                detail,
                "" if ok else f"fix permissions or set CCP_{name.split()[0].upper()}_DIR",
            )
        )

    if error is not None:
        checks.append(Check(real, "keys", "warn", "not checked: settings did not parse"))
    else:
        checks.append(
            Check(
                real,
                "ZAI_API_KEY",
                "ok" if settings.zai_api_key else "warn",
                "set" if settings.zai_api_key else "not set",
                "" if settings.zai_api_key else "needed for the real zai lane only",
            )
        )
        anth = [
            n
            for n, s in (
                ("ANTHROPIC_AUTH_TOKEN", settings.anthropic_auth_token),
                ("ANTHROPIC_API_KEY", settings.anthropic_api_key),
            )
            if s
        ]
        checks.append(
            Check(
                real,
                "ANTHROPIC_AUTH_TOKEN/API_KEY",
                "ok" if anth else "warn",
                f"{', '.join(anth)} set" if anth else "neither set",
                "" if anth else "or the client's own login; mocks need none",
            )
        )
    checks.append(
        Check(
            real,
            "ALLOW_REAL_API",
            "ok" if settings.allow_real_api else "warn",
            "1" if settings.allow_real_api else "off",
            "" if settings.allow_real_api else "set ALLOW_REAL_API=1 for real upstreams",
        )
    )

    claude, curl, node, npm = (
        find_claude(),
        shutil.which("curl"),
        shutil.which("node"),
        shutil.which("npm"),
    )
    with ThreadPoolExecutor(4) as pool:  # each --version may take a second; run them together
        versions = list(
            pool.map(
                lambda p: version_of([p, "--version"]) if p else None, (claude, curl, node, npm)
            )
        )
    checks.append(_tool(real, "curl", curl, versions[1], "apt-get install curl"))
    checks.append(_tool(cli, "claude CLI", claude, versions[0], "make claude installs it"))
    checks.append(_tool(cli, "node", node, versions[2], "install Node.js 18+ (the CLI runs on it)"))
    checks.append(_tool(cli, "npm", npm, versions[3], "comes with Node.js; make claude uses it"))
    checks.append(_port_check(cli, settings))
    checks.append(_mitmproxy_check(mitm))
    return checks


def _mitmproxy_check(group: str) -> Check:
    """`ccp mitm` needs the mitmproxy library (installed by `make venv`, without its pins)."""
    if importlib.util.find_spec("mitmproxy") is None:
        return Check(
            group,
            "mitmproxy",
            "missing",
            "not installed",
            "make venv (pip install --no-deps -r requirements-mitm.txt)",
        )
    from importlib.metadata import version

    return Check(group, "mitmproxy", "ok", f"mitmproxy {version('mitmproxy')} (ccp mitm)")


def _port_check(group: str, settings: Settings) -> Check:
    files = RunFiles(Path(settings.logs_dir))
    port, pid = settings.default_port, running_pid(files)
    if pid:
        held = read_int(files.port)
        where = "its port" if held == port else f"port {held} (not the profile's {port})"
        return Check(
            group, "port", "ok", f"ccp running (pid {pid}, profile {settings.profile}) on {where}"
        )
    if port_free("127.0.0.1", port):
        return Check(group, "port", "ok", f"127.0.0.1:{port} free for ccp up")
    return Check(
        group,
        "port",
        "warn",
        f"127.0.0.1:{port} held by another process",
        "ccp up --port N, or another CCP_PROFILE",
    )


def verdict(checks: list[Check]) -> bool:
    """The mock repro path is fully ok."""
    return all(c.status == "ok" for c in checks if c.group == GROUPS[0])


def render(checks: list[Check], out: TextIO) -> None:
    console = None
    if out.isatty():
        from rich.console import Console

        console = Console(file=out, highlight=False, soft_wrap=True)
    for group in GROUPS:
        rows = [c for c in checks if c.group == group]
        bad = [c.name for c in rows if c.status in ("missing", "fail")]
        warned = [c.name for c in rows if c.status == "warn"]
        head = (
            f"{group}: not ready ({', '.join(bad)})"
            if bad
            else f"{group}: ready with warnings ({', '.join(warned)})"
            if warned
            else f"{group}: ready"
        )
        lines = [(head, "bold")] + [
            (
                f"  {c.status:<8}{c.name:<29}{c.detail}" + (f"  → {c.hint}" if c.hint else ""),
                _STYLES[c.status],
            )
            for c in rows
        ]
        for text, style in lines:
            if console is not None:
                console.print(text, style=style, markup=False)
            else:
                print(text, file=out)


def main(argv: list[str] | None = None, out: TextIO | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ccp doctor",
        description="What is missing for each path; exit 0 when the mock repro path is ready.",
    )
    parser.add_argument("--json", action="store_true", help="the checks as JSON")
    args = parser.parse_args(argv)
    out = sys.stdout if out is None else out
    try:
        settings, error = load_settings(), None
    except ConfigError as exc:
        settings, error = None, f"ConfigError: {exc}"
    checks = run_checks(settings, error)
    ok = verdict(checks)
    if args.json:
        print(json.dumps({"ok": ok, "checks": [c._asdict() for c in checks]}, indent=1), file=out)
    else:
        render(checks, out)
    return 0 if ok else 1
