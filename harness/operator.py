"""An operator at a terminal: `ccp` verbs, make targets and the shell functions, typed as they are.

`Operator(home, env)` runs everything with a clean environment (harness.shim.clean_env) plus `env`,
`CCP_HOME=home` and the venv's `bin/` first on PATH, from any folder (`cwd=`), so a scenario checks
what a person would see: the exit code, stdout and stderr of the real command. `make()` runs a target
of the project's Makefile without letting make rebuild the venv or reinstall the claude CLI (both
exist whenever the suite runs). `shell()` runs a bash script after `eval "$(ccp shell-init)"`.
Every call has a timeout; `stop_all()` stops any background shim the operator left running.
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from harness.shim import PROJECT_ROOT, clean_env
from proxy.config.profiles import pid_alive, read_int

VENV_BIN = Path(sys.executable).parent
# make's prerequisites that the suite itself stands on: never remade from inside a test
_MADE = (".venv/.ccp-installed", ".tools/claude/node_modules/.bin/claude")


class Operator:
    def __init__(self, home: str | os.PathLike, env: Mapping[str, str] | None = None,
                 cwd: str | os.PathLike | None = None) -> None:
        self.home = Path(home)
        self.cwd = Path(cwd) if cwd else self.home
        self.extra = dict(env or {})

    def environ(self, **more: str) -> dict[str, str]:
        env = clean_env({"CCP_HOME": str(self.home), **self.extra, **more})
        env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
        return env

    def run(self, argv: list[str], *, cwd: str | os.PathLike | None = None, timeout: float = 60,
            input: str | None = None, env: Mapping[str, str] | None = None
            ) -> subprocess.CompletedProcess:
        return subprocess.run(argv, cwd=str(cwd or self.cwd), env=self.environ(**(env or {})),
                              input=input, stdin=None if input is not None else subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=timeout)

    def ccp(self, *args: str, **kw) -> subprocess.CompletedProcess:
        """`ccp VERB …` through the installed console script, as typed."""
        return self.run([str(VENV_BIN / "ccp"), *args], **kw)

    def make(self, *targets: str, timeout: float = 300, **kw) -> subprocess.CompletedProcess:
        olds = [f"--old-file={name}" for name in _MADE]
        return self.run(["make", "--no-print-directory", "-C", str(PROJECT_ROOT), *olds, *targets],
                        timeout=timeout, **kw)

    def shell(self, script: str, **kw) -> subprocess.CompletedProcess:
        """`script` in bash after `eval "$(ccp shell-init)"` (the functions as in ~/.bashrc)."""
        return self.run(["bash", "-c", 'eval "$(ccp shell-init)"\n' + script], **kw)

    def stop_all(self) -> None:
        """Stop every background shim under this home (the last resort after a failed test)."""
        self.ccp("down", timeout=30)
        for pid_file in self.home.rglob("ccp.pid"):
            pid = read_int(pid_file)
            if pid and pid_alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
