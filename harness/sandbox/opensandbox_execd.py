"""The execd half of ccp's OpenSandbox-compatible server: local process sandboxes and their commands.

A `LocalSandbox` is a temporary root folder; its commands run as `bash --noprofile --norc -c` in that
folder (execd's own shell; a login shell would let /etc/profile reset PATH and hide the project's
`.tools/claude/node_modules/.bin`), with the create-time env merged over `base_env`. Output is framed
the way execd frames it (`split_lines`), and written as execd's SSE frames: bare JSON plus a blank line.

The /tmp mapping: each sandbox keeps its own /tmp at `<root>/tmp/`. `map_tmp` rewrites the literal
prefix `/tmp/` to `<root>/tmp/` wherever it starts a path (not inside `/var/tmp/` or `./tmp/`); a
bare `/tmp` without the slash is left alone. The server applies it to command strings, `cwd` and file
paths; TMPDIR points at `<root>/tmp` too.
"""
from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from aiohttp import web

import harness

PROJECT_ROOT = Path(harness.__file__).resolve().parent.parent
TOOLS_BIN = PROJECT_ROOT / ".tools" / "claude" / "node_modules" / ".bin"
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_TMP_PREFIX = re.compile(r"(?<![\w./-])/tmp/")


def map_tmp(text: str, root: Path) -> str:
    """`text` with every path-starting `/tmp/` rewritten to `<root>/tmp/` (see the module doc)."""
    return _TMP_PREFIX.sub(lambda _: f"{root}/tmp/", text)


def base_env(root: Path) -> dict[str, str]:
    """The minimal environment under a sandbox's create-time env."""
    path = f"{TOOLS_BIN}:{SYSTEM_PATH}" if TOOLS_BIN.is_dir() else SYSTEM_PATH
    return {"PATH": path, "HOME": str(root / "home"), "TMPDIR": str(root / "tmp"),
            "LANG": "C.UTF-8"}


def split_lines(pending: str, chunk: str, last_was_cr: bool, final: bool
                ) -> tuple[list[str], str, bool]:
    """execd's output framing: one event per line without its terminator, `"\\n"` for a blank line.

    Returns (events, still-pending text, whether the last terminator was a CR).
    """
    events: list[str] = []
    for ch in chunk:
        if ch in "\r\n":
            if pending:
                events.append(pending)
                pending = ""
            elif not (ch == "\n" and last_was_cr):
                events.append("\n")
            last_was_cr = ch == "\r"
            continue
        last_was_cr = False
        pending += ch
    if final and pending:
        events.append(pending)
        pending = ""
    return events, pending, last_was_cr


def now_ms() -> int:
    return int(time.time() * 1000)


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


@dataclass
class LocalSandbox:
    """One process sandbox: its record and the processes running in it."""

    id: str
    image: str
    entrypoint: list[str]
    env: dict[str, str]
    metadata: dict[str, str]
    root: Path
    created_at: datetime
    expires_at: datetime | None
    procs: set[asyncio.subprocess.Process] = field(default_factory=set)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id, "image": {"uri": self.image}, "entrypoint": self.entrypoint,
            "metadata": self.metadata, "createdAt": iso(self.created_at),
            "status": {"state": "Running", "reason": "CONTAINER_RUNNING",
                       "lastTransitionAt": iso(self.created_at)}}
        if self.expires_at is not None:
            out["expiresAt"] = iso(self.expires_at)
        return out

    def command_env(self, extra: Mapping[str, str] | None) -> dict[str, str]:
        return {**base_env(self.root), **self.env, **(extra or {})}

    def kill(self) -> None:
        for proc in list(self.procs):
            kill_group(proc)
        self.procs.clear()


def kill_group(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


async def run_streaming(box: LocalSandbox, command: str, cwd: str, envs: dict[str, str],
                         timeout_ms: int, resp: web.StreamResponse) -> None:
    """Run one command in `box`, writing execd's SSE frames (bare JSON + blank line) to `resp`."""
    lock = asyncio.Lock()

    async def emit(event: dict[str, Any]) -> None:
        event.setdefault("timestamp", now_ms())
        async with lock:
            await resp.write(json.dumps(event).encode() + b"\n\n")

    session = uuid.uuid4().hex
    started = time.monotonic()
    try:
        proc = await asyncio.create_subprocess_exec(
            "bash", "--noprofile", "--norc", "-c", command, cwd=cwd, env=box.command_env(envs),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, start_new_session=True)
    except OSError as exc:
        await emit({"type": "init", "text": session})
        await emit({"type": "error", "error": {"ename": "CommandExecError", "evalue": str(exc),
                                               "traceback": [str(exc)]}})
        return
    box.procs.add(proc)

    async def pump(stream: asyncio.StreamReader, kind: str) -> None:
        pending, last_cr = "", False
        while True:
            chunk = await stream.read(65536)
            text = chunk.decode("utf-8", errors="replace")
            events, pending, last_cr = split_lines(pending, text, last_cr, final=not chunk)
            for line in events:
                await emit({"type": kind, "text": line})
            if not chunk:
                return

    pumps: asyncio.Future[Any] | None = None
    try:
        await emit({"type": "init", "text": session})
        pumps = asyncio.gather(pump(proc.stdout, "stdout"), pump(proc.stderr, "stderr"))
        try:
            async with asyncio.timeout(timeout_ms / 1000 if timeout_ms > 0 else None):
                await proc.wait()
                await pumps
        except TimeoutError:
            kill_group(proc)
            await proc.wait()
            await pumps
        code = proc.returncode
        if code == 0:
            await emit({"type": "execution_complete",
                        "execution_time": int((time.monotonic() - started) * 1000)})
        else:
            await emit({"type": "error", "error": {
                # Go's ExitCode() is -1 for a signalled process; execd reports exactly that
                "ename": "CommandExecError", "evalue": str(code if code > 0 else -1),
                "traceback": [f"exit status {code}" if code > 0 else f"signal: {-code}"]}})
    finally:
        kill_group(proc)  # a client that left cancels us: its command must not outlive it
        box.procs.discard(proc)
        if pumps is not None and not pumps.done():
            pumps.cancel()
            pumps.add_done_callback(lambda fut: fut.cancelled() or fut.exception())
        if proc.returncode is None:
            await proc.wait()
