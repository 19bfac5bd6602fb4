"""The `local` runtime: a sandbox is a temporary folder and the processes started in it.

Commands run with `bash -c` in the sandbox folder, with a minimal environment (PATH with the project's
pinned `claude` CLI first, a HOME inside the sandbox) plus the injected env, in their own process group
so a timeout or `delete()` kills everything they started. A sandbox keeps its own `/tmp`: the literal
prefix `/tmp/` in a command or a file path is mapped to `<sandbox>/tmp/`.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

from harness.sandbox.runtime import ArtifactReadError, CommandResult, SandboxCreateError
from harness.shim import PROJECT_ROOT

CLAUDE_BIN_DIR = PROJECT_ROOT / ".tools" / "claude" / "node_modules" / ".bin"


def map_tmp(text: str, root: Path) -> str:
    """`/tmp/…` → `<root>/tmp/…` (the sandbox's own /tmp)."""
    return text.replace("/tmp/", f"{root}/tmp/")


class LocalSandbox:
    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root = root
        self.id = f"local-{root.name}"
        self.env = env
        self._groups: set[int] = set()  # process groups started here; delete() kills them all

    def run(self, command: str, timeout: float = 120.0) -> CommandResult:
        """Run until the command itself exits. Output goes to files, not pipes, so a process it left
        in the background (which keeps running until delete()) cannot hold the call open."""
        out_path, err_path = self.root / ".ccp-stdout", self.root / ".ccp-stderr"
        with open(out_path, "wb") as out_fh, open(err_path, "wb") as err_fh:
            proc = subprocess.Popen(["bash", "-c", map_tmp(command, self.root)], cwd=self.root,
                                    env=self.env, stdin=subprocess.DEVNULL, stdout=out_fh, stderr=err_fh,
                                    start_new_session=True)
        self._groups.add(proc.pid)
        timed_out = False
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc.pid)
            proc.wait()
            timed_out = True
        out = out_path.read_text(errors="replace")
        err = err_path.read_text(errors="replace")
        if timed_out:
            return CommandResult(124, out, err + f"\n[timed out after {timeout:.0f}s]", timed_out=True)
        return CommandResult(proc.returncode, out, err)

    def read_file(self, path: str) -> str:
        target = Path(map_tmp(path, self.root)) if path.startswith("/tmp/") else self.root / path
        try:
            return target.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise ArtifactReadError(f"cannot read {path} in sandbox {self.id}: {exc.strerror}") from exc

    def delete(self) -> None:
        for group in list(self._groups):
            _kill_group(group)
        self._groups.clear()
        shutil.rmtree(self.root, ignore_errors=True)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class LocalRuntime:
    name = "local"

    def __init__(self, base_dir: str | os.PathLike | None = None) -> None:
        self.base_dir = Path(base_dir) if base_dir else None

    def create(self, env: Mapping[str, str], image: str | None = None, name: str | None = None,
               timeout: float = 300.0) -> LocalSandbox:
        try:
            if self.base_dir:
                self.base_dir.mkdir(parents=True, exist_ok=True)
            root = Path(tempfile.mkdtemp(prefix=f"ccp-sbx-{name or 'task'}-", dir=self.base_dir))
            (root / "tmp").mkdir()
            (root / "home").mkdir()
        except OSError as exc:
            raise SandboxCreateError(f"cannot create a local sandbox: {exc}") from exc
        path = os.pathsep.join(p for p in (str(CLAUDE_BIN_DIR) if CLAUDE_BIN_DIR.is_dir() else "",
                                           os.environ.get("PATH", "/usr/bin:/bin")) if p)
        base = {"PATH": path, "HOME": str(root / "home"), "LANG": "C.UTF-8", "TMPDIR": str(root / "tmp"),
                "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
        return LocalSandbox(root, {**base, **dict(env)})
