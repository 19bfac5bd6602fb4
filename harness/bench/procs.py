"""Process plumbing the bench shares: the fastest event loop, announced ports, CPU and peak RSS.

CPU time and peak RSS are read from /proc (`utime + stime` of `/proc/<pid>/stat`, `VmHWM` of
`/proc/<pid>/status`), summed over a process and its children, so a target that forks workers is
charged for all of them.
"""
from __future__ import annotations

import json
import os
import selectors
import subprocess
import time
from collections.abc import Coroutine

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def run_fast(coro: Coroutine):
    """Run `coro` on uvloop when it is installed, else on asyncio's own loop; its result."""
    try:
        import uvloop
    except ImportError:
        import asyncio
        return asyncio.run(coro)
    return uvloop.run(coro)


def read_announce(proc: subprocess.Popen, timeout: float, what: str) -> dict:
    """The first JSON line a child prints on stdout (`{"port": ...}`), within `timeout`."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    buf = b""
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0 or not sel.select(left):
                raise TimeoutError(f"{what} did not announce its port within {timeout:g}s")
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                raise RuntimeError(f"{what} exited before listening (code {proc.wait()})")
            buf += chunk
    return json.loads(buf.split(b"\n", 1)[0])


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            kids = [int(x) for x in fh.read().split()]
    except OSError:
        return []
    return kids + [g for k in kids for g in _children(k)]


def tree(pid: int) -> list[int]:
    return [pid, *_children(pid)]


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of `pid` and its live children."""
    total = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / CLOCK_TICKS


def peak_rss_mb(pid: int) -> float:
    """Peak resident set (VmHWM) of `pid` plus its children, in MB."""
    total = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/status") as fh:
                for line in fh:
                    if line.startswith("VmHWM:"):
                        total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024.0
