"""Where ccp's time goes: py-spy samples the running shim while the bench drives load through it.

`profile_ccp()` runs for each missed family of checks (passthrough, streaming, conversion) one load
of ~4 s with `py-spy record --format raw` attached to the shim, and keeps the top frames by self time
and the top `proxy.*` frames by inclusive time. `top_frames()` is the pure part (collapsed stacks in,
lines out). Without py-spy (or without permission to attach) the profile says why.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

from harness.bench import matrix
from harness.bench.loadgen import run_load
from harness.bench.matrix import spec_for
from harness.bench.procs import run_fast

SECONDS = 4


def top_frames(collapsed: str, n: int = 15, own_prefix: str = "(proxy/") -> list[str]:
    """Self-time and inclusive-time leaders from py-spy's collapsed stacks (`a;b;c COUNT`)."""
    self_t: Counter = Counter()
    incl: Counter = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        k = int(count)
        total += k
        frames = stack.split(";")
        self_t[frames[-1]] += k
        for frame in {f.rsplit(":", 1)[0] for f in frames}:  # per function, not per line
            if own_prefix in frame:
                incl[frame] += k
    if not total:
        return ["(no samples)"]
    lines = [f"{total} samples; self time:"]
    lines += [f"  {c * 100 / total:5.1f}%  {f}" for f, c in self_t.most_common(n)]
    lines.append("inclusive time in the shim's own code:")
    lines += [f"  {c * 100 / total:5.1f}%  {f}" for f, c in incl.most_common(n)]
    return lines


def _spy() -> str | None:
    exe = Path(sys.executable).parent / "py-spy"
    return str(exe) if exe.exists() else shutil.which("py-spy")


def profile_ccp(target, mock, checks: list[dict], body_kb: int, workdir: Path) -> dict:
    """Profiles of the scenarios whose checks were missed, keyed by scenario name."""
    missed = " ".join(c["check"] for c in checks if c["met"] is False)
    wanted = []
    if "non-stream" in missed or "1 client" in missed or "req/s" in missed:
        wanted.append("nonstream_c32")
    if "stream 50" in missed:
        wanted.append("stream50_c32")
    if "conversion" in missed:
        wanted.append("convert_c32")
    spy = _spy()
    out = {}
    for sc in matrix.scenarios():
        if sc.name not in wanted:
            continue
        if spy is None:
            out[sc.name] = {"describe": "py-spy is not installed", "top": []}
            continue
        sc = matrix.Scenario(sc.name, sc.concurrency, sc.stream, sc.convert, sc.deltas,
                             duration=SECONDS + 1.0, cap=SECONDS + 20)
        mock.configure(sc.deltas)
        raw = workdir / f"profile-{sc.name}.txt"
        spy_proc = subprocess.Popen([spy, "record", "--format", "raw", "--nonblocking",
                                     "-d", str(SECONDS), "-r", "200", "-o", str(raw),
                                     "-p", str(target.pid)], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE)
        run_fast(run_load(spec_for(target, sc, body_kb)))
        try:
            _, err = spy_proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            spy_proc.kill()
            err = b"py-spy did not finish"
        text = raw.read_text() if raw.exists() else ""
        describe = (f"py-spy, {SECONDS} s at 200 Hz on the ccp process during {sc.name}"
                    if text else f"py-spy failed: {err.decode(errors='replace')[-300:]}")
        out[sc.name] = {"describe": describe, "top": top_frames(text) if text else []}
    return out
