"""`ccp soak` (`make overnight`): haiku and sonnet probes in a loop until both lanes have answered.

Each attempt sends one haiku probe (zai lane) and one sonnet probe (anthropic lane) through the real
shim with one client kind (`cli` = the real `claude` CLI, `curl`, or `http`), each with
`TIMEOUT_SECS`, then waits `SLEEP_BETWEEN`. Both lanes are probed on every attempt, also after a lane
has reached its target, so the load stays the same from window to window. The loop stops by itself
when every lane has succeeded `--until-successes` times (default 1), or when `MAX_MINUTES` (or
`--max-attempts`) is reached. With `SOAK_TOGGLE_H1=1` every third attempt runs on a shim restarted
with `CCP_FORCE_H1=1` (a planned restart, counted apart from recoveries; the others speak HTTP/2 to
an https upstream when `CCP_HTTP2=1` is set).

It survives a shim that dies or stops answering (after a failed attempt it checks the process and
`/healthz` and restarts the shim on the same port) and an upstream outage (failed probes are counted
and the loop goes on). Gaps are counted per lane: from the first failed probe to the next success,
with the failed probes and the restarts in between. `--chaos` provokes both deterministically, by
attempt number: `kill@3` (SIGKILL the shim before attempt 3), `restart@3` (SIGTERM it), `outage@5-7`
(the mock upstreams answer `status=503` during attempts 5..7; `outage@5-7:reset_before_headers`
takes any harness.mock_faults spec).

By default it runs on built-in mock upstreams (no keys); with `ALLOW_REAL_API=1`, `ZAI_API_KEY` and
an Anthropic credential it uses the environment's upstreams (no outage chaos then). Everything goes to
a logs folder of its own (`<logs>/soak/<run>/`) and `results/overnight/`: a METRICS snapshot per
window (`METRICS_<run>-w001.json`, a window is `--window` attempts or `--window-minutes`), the whole
run's `METRICS_<run>.json`, a copy of the usage log, `<run>-SOAK.md` and `<run>-SOAK.json`; an entry
is appended to `results/TESTS.md`. Exit 0 when both lanes succeeded and the record gates pass.

`--fleet` runs the fleet soak instead (harness.fleet_soak): three shims on one PostgreSQL store
under a bounded round-robin load, a shim killed and restarted and the database stopped and started
in the middle, then zero lost and zero duplicated records, counted from the files and the store.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import httpx

from harness.cli_probe import find_claude
from harness.gates import GateResult, format_verdicts, no_secret_in_files, run_gates
from harness.keys import lane_env, test_keys
from harness.mock_faults import parse_fault
from harness.mock_upstream import MockUpstream
from harness.probe_kinds import probe
from harness.probes import ProbeResult, attach_records
from harness.shim import ShimProcess, run_env, run_folder, wait_until
from proxy.config.load import load_settings
from proxy.core.parse import ConfigError, truthy
from proxy.core.record import utc_timestamp
from reports.results_log import append_entry
from reports.summarize import fmt, summarize, write_metrics
from reports.usage_io import read_records, to_frame, usage_files

HAIKU_MODEL = "claude-haiku-4-5-20251001"
SONNET_MODEL = "claude-sonnet-4-5-20250929"
PROBE_KINDS = ("cli", "curl", "http")
DEFAULT_OUTAGE = "status=503"
STOP_SIGNALS = {"kill": signal.SIGKILL, "restart": signal.SIGTERM}
# passed from the environment to the shim on the mocks too (as `ccp repro` does)
ROUTING_TOGGLES = ("FORCE_HAIKU_TO_ZAI", "OFFLOAD_PAUSED", "ZAI_HEADER_MODE", "CCP_FORCE_H1")
RECORD_WAIT = 10.0  # seconds to wait for the records of an attempt's probes
HEALTH_TIMEOUT = 2.0


class Lane(NamedTuple):
    family: str  # haiku | sonnet
    lane: str  # the lane the shim should route it to
    model: str  # the model id curl/http send
    alias: str  # the model the CLI is given


def lanes(haiku: str = HAIKU_MODEL, sonnet: str = SONNET_MODEL) -> tuple[Lane, ...]:
    return (Lane("haiku", "zai", haiku, "haiku"), Lane("sonnet", "anthropic", sonnet, "sonnet"))


# --- pure parts -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Chaos:
    """Faults provoked at given attempts (see `parse_chaos`)."""

    stops: dict[int, str] = field(default_factory=dict)  # attempt -> "kill" | "restart"
    outages: tuple[tuple[int, int, str], ...] = ()  # (first, last, fault spec), inclusive

    def stop_before(self, attempt: int) -> str | None:
        return self.stops.get(attempt)

    def outage_at(self, attempt: int) -> str | None:
        """The fault the mock upstreams answer with during `attempt` (None: no outage)."""
        for first, last, spec in self.outages:
            if first <= attempt <= last:
                return spec
        return None

    def describe(self) -> str:
        parts = [f"{kind}@{n}" for n, kind in sorted(self.stops.items())]
        parts += [f"outage@{a}-{b}:{spec}" for a, b, spec in self.outages]
        return ",".join(parts) or "none"


def _attempt_number(text: str, item: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"chaos {item!r}: attempt numbers are integers >= 1, got {text!r}")
    return int(text)


def parse_chaos(spec: str | None) -> Chaos:
    """`kill@3,restart@8,outage@5-7[:FAULT]` → Chaos; ValueError naming the bad item."""
    stops: dict[int, str] = {}
    outages: list[tuple[int, int, str]] = []
    for item in (spec or "").split(","):
        item = item.strip()
        if not item:
            continue
        kind, at, where = item.partition("@")
        if not at or kind not in (*STOP_SIGNALS, "outage"):
            raise ValueError(f"chaos {item!r}: expected kill@N, restart@N or outage@A-B[:FAULT]")
        if kind in STOP_SIGNALS:
            n = _attempt_number(where, item)
            if n in stops:
                raise ValueError(f"chaos {item!r}: attempt {n} already has {stops[n]}@{n}")
            stops[n] = kind
            continue
        span, _, fault = where.partition(":")
        first, dash, last = span.partition("-")
        a = _attempt_number(first, item)
        b = _attempt_number(last, item) if dash else a
        if b < a:
            raise ValueError(f"chaos {item!r}: the range {a}-{b} runs backwards")
        fault = fault.strip() or DEFAULT_OUTAGE
        parse_fault(fault)  # raises ValueError on a bad spec
        if any(a <= y and x <= b for x, y, _ in outages):
            raise ValueError(f"chaos {item!r}: overlaps another outage")
        outages.append((a, b, fault))
    return Chaos(stops, tuple(sorted(outages)))


def h1_for(attempt: int, toggle: bool) -> bool:
    """With the toggle, every third attempt (3, 6, 9, …) runs with CCP_FORCE_H1=1."""
    return toggle and attempt % 3 == 0


def window_of(attempt: int, elapsed_s: float, per_attempts: int,
              per_minutes: float | None = None) -> int:
    """The 1-based window an attempt belongs to: by minutes since the start when `per_minutes` is
    set, else by blocks of `per_attempts` attempts."""
    if per_minutes:
        return int(max(0.0, elapsed_s) // (per_minutes * 60.0)) + 1
    if per_attempts < 1:
        raise ValueError(f"per_attempts must be >= 1, got {per_attempts}")
    return (attempt - 1) // per_attempts + 1


def stop_reason(successes: dict[str, int], target: int, elapsed_s: float, max_minutes: float,
                attempts: int, max_attempts: int = 0) -> str | None:
    """Why the loop stops before the next attempt, or None to go on."""
    if successes and all(n >= target for n in successes.values()):
        return "done"
    if elapsed_s >= max_minutes * 60.0:
        return "max_minutes"
    if max_attempts and attempts >= max_attempts:
        return "max_attempts"
    return None


class ProbeEvent(NamedTuple):
    attempt: int
    lane: str
    started: float  # seconds since the run started
    ended: float
    ok: bool


def lane_gaps(events: Iterable[ProbeEvent], restarts: Iterable[int] = (),
              run_end: float | None = None) -> list[dict]:
    """Per lane, each run of failed probes up to the next success.

    A gap lasts from the start of its first failed probe to the end of the next successful probe on
    that lane (or `run_end` when none came: `open`). `restarts` are the attempt numbers after which the
    shim was restarted; those within the gap's attempts are counted in it.
    """
    restarts = list(restarts)
    by_lane: dict[str, list[ProbeEvent]] = {}
    for e in events:
        by_lane.setdefault(e.lane, []).append(e)
    gaps: list[dict] = []

    def close(gap: dict, end: float, recovered_at: int | None) -> None:
        gap["seconds"] = round(max(0.0, end - gap.pop("_start")), 3)
        gap["recovered_at"] = recovered_at
        gap["open"] = recovered_at is None
        gap["restarts"] = sum(1 for r in restarts if gap["first_attempt"] <= r <= gap["last_attempt"])
        gaps.append(gap)

    for lane, items in by_lane.items():
        current: dict | None = None
        for e in sorted(items, key=lambda e: (e.attempt, e.started)):
            if not e.ok:
                if current is None:
                    current = {"lane": lane, "first_attempt": e.attempt, "last_attempt": e.attempt,
                               "failed_probes": 0, "_start": e.started}
                current["failed_probes"] += 1
                current["last_attempt"] = e.attempt
            elif current is not None:
                close(current, e.ended, e.attempt)
                current = None
        if current is not None:
            close(current, run_end if run_end is not None else items[-1].ended, None)
    return gaps


def gap_totals(gaps: list[dict], lane_names: Iterable[str]) -> dict[str, dict]:
    """Per lane: how many gaps, their seconds in total and the longest."""
    out = {}
    for lane in lane_names:
        mine = [g for g in gaps if g["lane"] == lane]
        out[lane] = {"gaps": len(mine), "seconds": round(sum(g["seconds"] for g in mine), 3),
                     "longest_s": max((g["seconds"] for g in mine), default=0.0),
                     "failed_probes": sum(g["failed_probes"] for g in mine)}
    return out


def records_for(records: Iterable[dict], rids: Iterable[str]) -> list[dict]:
    wanted = set(rids)
    return [r for r in records if r.get("rid") in wanted]


def late_rids(probes: Iterable[dict], records: Iterable[dict]) -> int:
    """Give a CLI probe without a rid the rid of the record with its session id (written after the
    attempt's wait); such a probe did reach the shim. Returns how many were filled in."""
    by_session = {r["client_session"]: r["rid"] for r in records if r.get("client_session")}
    filled = 0
    for p in probes:
        if not p.get("rid") and p.get("session_id") in by_session:
            p["rid"], p["reached"] = by_session[p["session_id"]], True
            filled += 1
    return filled


def record_accounting(probes: Iterable[dict], records: Iterable[dict]) -> dict:
    """Each probe that reached the shim must have exactly one record, and each record a probe.

    `probes` are dicts with `rid` and `reached`; returns the rids that are missing or repeated and
    the number of records that belong to no probe.
    """
    counts: dict[str, int] = {}
    for r in records:
        rid = r.get("rid")
        counts[rid] = counts.get(rid, 0) + 1
    probes = list(probes)
    mine = {p["rid"] for p in probes if p.get("rid")}
    missing = [p.get("rid") or f"attempt {p.get('attempt')}/{p.get('lane')}"
               for p in probes if p.get("reached") and counts.get(p.get("rid"), 0) == 0]
    repeated = sorted(rid for rid in mine if counts.get(rid, 0) > 1)
    orphans = sum(n for rid, n in counts.items() if rid not in mine)
    return {"probes": len(probes), "reached": sum(1 for p in probes if p.get("reached")),
            "records": sum(counts.values()), "missing": missing, "repeated": repeated,
            "orphans": orphans}


# --- the loop ---------------------------------------------------------------------------------------

@dataclass
class Config:
    max_minutes: float = 480.0
    timeout_secs: float = 120.0
    sleep_between: float = 30.0
    toggle_h1: bool = False
    kind: str = "cli"
    until_successes: int = 1
    max_attempts: int = 0
    window: int = 10
    window_minutes: float | None = None
    chaos: Chaos = field(default_factory=Chaos)
    progress: bool = True


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    try:
        return float(raw) if raw else default
    except ValueError:
        raise ConfigError(f"{name}={raw!r}: expected a number") from None


def _env_bool(name: str) -> bool:
    return truthy(os.environ.get(name))


@contextmanager
def live_status(total: int, enabled: bool) -> Iterator[Callable[[int, str], None]]:
    """Yields `update(completed, description)`: a rich progress line on a terminal, nothing else."""
    if not enabled or total <= 0 or not sys.stderr.isatty():
        yield lambda _completed, _description: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("soak", total=total)
        yield lambda completed, description: bar.update(task, completed=completed,
                                                          description=description)


class Soak:
    """One soak run: owns the shim (and the mocks' fault switch), loops, writes the artifacts."""

    def __init__(self, cfg: Config, env: dict[str, str], client_auth: dict, logs_dir: Path,
                 out_dir: Path, run_name: str, mocks: tuple[MockUpstream, ...] = (),
                 lane_specs: tuple[Lane, ...] = lanes(), ready_path: str = "/healthz") -> None:
        self.cfg, self.env, self.client_auth = cfg, env, client_auth
        self.logs_dir, self.out_dir, self.run_name = logs_dir, out_dir, run_name
        self.mocks, self.lanes, self.ready_path = mocks, lane_specs, ready_path
        self.shim: ShimProcess | None = None
        self.shim_h1 = False
        self.port = 0
        self.url = ""
        self.t0 = time.monotonic()
        self.attempts: list[dict] = []
        self.events: list[ProbeEvent] = []
        self.recoveries: list[dict] = []
        self.switches: list[dict] = []
        self.chaos_log: list[dict] = []
        self.windows: list[dict] = []
        self.successes = {lane.family: 0 for lane in lane_specs}
        self.outage: str | None = None

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def say(self, text: str) -> None:
        print(f"[soak] {text}", flush=True)

    # the shim
    def _start_shim(self, h1: bool) -> None:
        # HTTP/1 attempts force it; the others run with whatever the environment says
        overlay = {**self.env, "CCP_FORCE_H1": "1"} if h1 else dict(self.env)
        try:
            shim = ShimProcess(self.logs_dir, overlay, ready_path=self.ready_path, port=self.port)
            shim.start()
        except (RuntimeError, TimeoutError, OSError):
            if not self.port:
                raise
            # the old port is taken: take any port (CLI/curl get the new URL with the next attempt)
            shim = ShimProcess(self.logs_dir, overlay, ready_path=self.ready_path)
            shim.start()
        self.shim, self.shim_h1 = shim, h1
        self.port, self.url = shim.port, shim.url

    def _stop_shim(self) -> None:
        if self.shim is not None:
            self.shim.stop()
            self.shim = None

    def _alive(self) -> tuple[bool, str]:
        shim = self.shim
        if shim is None or shim.proc is None:
            return False, "not running"
        if shim.proc.poll() is not None:
            return False, f"exited with code {shim.proc.returncode}"
        try:
            status = httpx.get(f"{shim.url}/healthz", timeout=HEALTH_TIMEOUT,
                               trust_env=False).status_code
        except httpx.HTTPError as exc:
            return False, f"/healthz: {type(exc).__name__}"
        return (True, "ok") if status == 200 else (False, f"/healthz answered {status}")

    def _recover(self, attempt: int, reason: str) -> None:
        t = time.monotonic()
        self._stop_shim()
        entry = {"after_attempt": attempt, "reason": reason, "at_s": round(self.elapsed(), 3)}
        try:
            self._start_shim(self.shim_h1)
            entry.update(ok=True, pid=self.shim.proc.pid, port=self.port)
        except (RuntimeError, TimeoutError, OSError) as exc:
            entry.update(ok=False, error=f"{type(exc).__name__}: {str(exc)[:200]}")
        entry["seconds"] = round(time.monotonic() - t, 3)
        self.recoveries.append(entry)
        self.say(f"shim {reason} after attempt {attempt}: "
                 + (f"restarted in {entry['seconds']:.1f}s (pid {entry.get('pid')}, port {self.port})"
                    if entry["ok"] else f"restart failed: {entry['error']}"))

    # chaos
    def _apply_chaos(self, attempt: int) -> list[str]:
        applied = []
        stop = self.cfg.chaos.stop_before(attempt)
        if stop and self.shim is not None and self.shim.proc is not None:
            proc = self.shim.proc
            proc.send_signal(STOP_SIGNALS[stop])
            try:
                proc.wait(10)  # the process is gone before the attempt starts
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
            applied.append(f"{stop} pid {proc.pid}")
        outage = self.cfg.chaos.outage_at(attempt)
        if outage != self.outage:
            for mock in self.mocks:
                mock.set_default(outage)
            applied.append(f"outage {outage}" if outage else "outage over")
            self.outage = outage
        for what in applied:
            self.chaos_log.append({"before_attempt": attempt, "what": what,
                                   "at_s": round(self.elapsed(), 3)})
        return applied

    # probes
    def _fire(self, lane: Lane, attempt: int) -> tuple[ProbeResult, str, float, float]:
        token = f"SOAK_{lane.family.upper()}_A{attempt}"
        prompt = f"Reply with exactly: {token} and nothing else."
        started = self.elapsed()
        if self.cfg.kind == "cli":
            res = probe("cli", self.url, lane.alias, prompt, timeout=self.cfg.timeout_secs,
                        auth_token=self.client_auth.get("cli_token"))
        else:
            res = probe(self.cfg.kind, self.url, lane.model, prompt, stream=True,
                        api_key=self.client_auth.get("api_key"), timeout=self.cfg.timeout_secs)
        return res, token, started, self.elapsed()

    def _attach(self, results: list[ProbeResult]) -> dict[int, dict]:
        """Wait (bounded) until every probe that reached the shim has its record."""
        reached = [i for i, r in enumerate(results) if r.status is not None]
        found: dict[int, dict] = {}

        def all_found() -> bool:
            nonlocal found
            records, _ = read_records(self.logs_dir) if usage_files(self.logs_dir) else ([], 0)
            found = attach_records(results, records)
            return all(i in found for i in reached)

        try:
            wait_until(all_found, RECORD_WAIT, "the records of the attempt's probes", interval=0.05)
        except TimeoutError:
            pass  # reported by the probes_recorded gate
        return found

    def _ensure_shim(self, attempt: int, h1: bool) -> None:
        """The shim this attempt needs: started (first attempt: a failure is fatal), restarted after
        a failed recovery, or restarted with the other CCP_FORCE_H1 (a planned switch)."""
        if self.shim is not None and h1 == self.shim_h1:
            return
        if not self.attempts:
            self._start_shim(h1)
            return
        if self.shim is None:  # the last recovery failed: try again, counted as a recovery
            self.shim_h1 = h1
            self._recover(attempt - 1, "still down")
            return
        self._stop_shim()
        try:
            self._start_shim(h1)
            self.switches.append({"before_attempt": attempt, "h1": h1, "pid": self.shim.proc.pid})
        except (RuntimeError, TimeoutError, OSError) as exc:
            self.shim_h1 = h1
            self.switches.append({"before_attempt": attempt, "h1": h1, "pid": None,
                                  "error": f"{type(exc).__name__}: {str(exc)[:200]}"})

    def _attempt(self, attempt: int) -> dict:
        h1 = h1_for(attempt, self.cfg.toggle_h1)
        self._ensure_shim(attempt, h1)
        window = window_of(attempt, self.elapsed(), self.cfg.window, self.cfg.window_minutes)
        self._flush_before(window)
        chaos = self._apply_chaos(attempt)
        started_at, t_start = utc_timestamp(), self.elapsed()
        fired = [(lane, *self._fire(lane, attempt)) for lane in self.lanes]
        results = [res for _, res, *_ in fired]
        found = self._attach(results)
        probes = []
        for i, (lane, res, token, started, ended) in enumerate(fired):
            ok = res.ok and token in res.text
            rec = found.get(i) or {}
            if ok:
                self.successes[lane.family] += 1
            self.events.append(ProbeEvent(attempt, lane.family, started, ended, ok))
            probes.append({"attempt": attempt, "lane": lane.family, "expect_lane": lane.lane,
                           "kind": res.kind, "model": res.model, "ok": ok, "status": res.status,
                           "rid": res.rid, "reached": res.status is not None,
                           "session_id": res.session_id,
                           "routed": rec.get("lane"), "err_type": rec.get("err_type"),
                           "h2": rec.get("h2"), "error": (res.error or "")[:200] or None,
                           "elapsed_ms": round(res.elapsed_ms, 1), "started_s": round(started, 3)})
        entry = {"n": attempt, "started_at": started_at, "t_s": round(t_start, 3), "h1": h1,
                 "shim_pid": self.shim.proc.pid if self.shim and self.shim.proc else None,
                 "port": self.port, "chaos": chaos, "probes": probes,
                 "ok": all(p["ok"] for p in probes), "window": window}
        self.attempts.append(entry)
        if not entry["ok"]:
            alive, reason = self._alive()
            if not alive:
                self._recover(attempt, reason)
        return entry

    # windows
    def _flush_before(self, window: int | None) -> None:
        """Write the snapshot of every finished window before `window` (None: every window)."""
        done = {w["index"] for w in self.windows}
        for index in sorted({a["window"] for a in self.attempts} - done):
            if window is None or index < window:
                self._flush_window(index)

    def _flush_window(self, index: int) -> None:
        mine = [a for a in self.attempts if a["window"] == index]
        if not mine:
            return
        records, bad = read_records(self.logs_dir) if usage_files(self.logs_dir) else ([], 0)
        rids = [p["rid"] for a in mine for p in a["probes"] if p["rid"]]
        window_records = records_for(records, rids)
        metrics = summarize(to_frame(window_records))
        probes = [p for a in mine for p in a["probes"]]
        metrics["window"] = {
            "run": self.run_name, "index": index, "first_attempt": mine[0]["n"],
            "last_attempt": mine[-1]["n"], "started_at": mine[0]["started_at"],
            "attempts": len(mine), "probes": len(probes),
            "ok": sum(1 for p in probes if p["ok"]), "failed": sum(1 for p in probes if not p["ok"]),
            "h1_attempts": sum(1 for a in mine if a["h1"]),
            "recoveries": sum(1 for r in self.recoveries
                              if mine[0]["n"] <= r["after_attempt"] <= mine[-1]["n"]),
        }
        path = write_metrics(metrics, self.out_dir / f"METRICS_{self.run_name}-w{index:03d}.json")
        self.windows.append({**metrics["window"], "records": len(window_records), "path": str(path),
                             "latency_ms": metrics["latency_ms"]})
        w = metrics["window"]
        self.say(f"window {index}: attempts {w['first_attempt']}-{w['last_attempt']}, "
                 f"{w['ok']}/{w['probes']} probes ok -> {path.name}")

    def _status_line(self) -> str:
        per_lane = " ".join(f"{k} {v}/{self.cfg.until_successes}" for k, v in self.successes.items())
        failed = sum(1 for a in self.attempts if not a["ok"])
        return (f"attempt {len(self.attempts)} · {per_lane} · failed {failed} · "
                f"restarts {len(self.recoveries)}" + (f" · outage {self.outage}" if self.outage else ""))

    def loop(self) -> str:
        """Run attempts until a stop reason; returns it."""
        target = self.cfg.until_successes
        total = target * len(self.lanes)
        reason = None
        with live_status(total, self.cfg.progress) as update:
            try:
                while True:
                    reason = stop_reason(self.successes, target, self.elapsed(),
                                         self.cfg.max_minutes, len(self.attempts),
                                         self.cfg.max_attempts)
                    if reason:
                        break
                    n = len(self.attempts) + 1
                    self._attempt(n)
                    update(sum(min(v, target) for v in self.successes.values()), self._status_line())
                    if not self.cfg.window_minutes:  # the next attempt's window is known already
                        self._flush_before(window_of(n + 1, 0.0, self.cfg.window))
                    if stop_reason(self.successes, target, self.elapsed(), self.cfg.max_minutes,
                                   n, self.cfg.max_attempts) is None and self.cfg.sleep_between > 0:
                        left = self.cfg.max_minutes * 60.0 - self.elapsed()
                        time.sleep(max(0.0, min(self.cfg.sleep_between, left)))  # pacing only
            except KeyboardInterrupt:
                reason = "interrupted"
        self._flush_before(None)
        return reason or "interrupted"

    def close(self) -> None:
        self._stop_shim()
        for mock in self.mocks:
            mock.stop()


# --- reporting --------------------------------------------------------------------------------------

def _gates(soak: Soak, records: list[dict], metrics_path: Path, accounting: dict) -> list[GateResult]:
    target = soak.cfg.until_successes
    short = {k: v for k, v in soak.successes.items() if v < target}
    verdicts = [GateResult("lanes_succeeded", not short,
                           ", ".join(f"{k} {v}/{target}" for k, v in soak.successes.items()))]
    verdicts += run_gates(records, metrics_path)
    problems = []
    if accounting["missing"]:
        problems.append(f"{len(accounting['missing'])} probe(s) without a record: "
                        f"{', '.join(map(str, accounting['missing'][:5]))}")
    if accounting["repeated"]:
        problems.append(f"rids on more than one record: {', '.join(accounting['repeated'][:5])}")
    if accounting["orphans"]:
        problems.append(f"{accounting['orphans']} record(s) belong to no probe")
    verdicts.append(GateResult(
        "probes_recorded", not problems,
        f"{accounting['reached']}/{accounting['probes']} probes reached the shim, one record each"
        if not problems else "; ".join(problems)))
    misrouted = [p for a in soak.attempts for p in a["probes"]
                 if p["routed"] is not None and p["routed"] != p["expect_lane"]
                 and p["err_type"] is None]
    verdicts.append(GateResult("probes_routed", not misrouted,
                               "every answered probe on its lane" if not misrouted else
                               f"{len(misrouted)} probe(s) on another lane, e.g. "
                               f"{misrouted[0]['lane']} -> {misrouted[0]['routed']}"))
    failed = [r for r in soak.recoveries if not r["ok"]]
    verdicts.append(GateResult("shim_recovered", not failed,
                               f"{len(soak.recoveries)} restart(s) after the shim went away"
                               if not failed else f"{len(failed)} restart(s) failed: {failed[0]['error']}"))
    return verdicts


def render_markdown(report: dict) -> str:
    """The soak summary page (pure)."""
    c, t = report["config"], report["totals"]
    lines = [f"# Soak {report['run']}", "",
             f"- started {report['started_at']}, stopped: **{report['stop_reason']}** after "
             f"{t['attempts']} attempt(s) in {fmt(t['seconds'])} s (limit {fmt(c['max_minutes'])} min)",
             f"- upstreams: {report['upstreams']}; probe: {c['kind']}; timeout {fmt(c['timeout_secs'])} s; "
             f"sleep {fmt(c['sleep_between'])} s; HTTP/1 every third attempt: "
             f"{'on' if c['toggle_h1'] else 'off'}; chaos: {c['chaos']}",
             "- successes (target " + str(c["until_successes"]) + "): "
             + ", ".join(f"{k} {v}" for k, v in report["successes"].items()),
             f"- failed attempts: {t['failed_attempts']}"
             + (f" ({', '.join(map(str, t['failed_attempt_numbers'][:20]))})"
                if t["failed_attempt_numbers"] else ""),
             f"- shim restarts after it went away: {t['recoveries']}; planned restarts "
             f"(HTTP/1 toggle): {t['planned_restarts']}", ""]
    lines += ["## Gaps", "", "| lane | attempts | failed probes | seconds | restarts | recovered at |",
              "|---|---|---|---|---|---|"]
    lines += [f"| {g['lane']} | {g['first_attempt']}–{g['last_attempt']} | {g['failed_probes']} | "
              f"{fmt(g['seconds'], 2)} | {g['restarts']} | "
              f"{g['recovered_at'] if g['recovered_at'] is not None else 'open'} |"
              for g in report["gaps"]] or ["| – | – | – | – | – | – |"]
    lines += ["", "| lane | gaps | seconds without success | longest (s) |", "|---|---|---|---|"]
    lines += [f"| {lane} | {v['gaps']} | {fmt(v['seconds'], 2)} | {fmt(v['longest_s'], 2)} |"
              for lane, v in report["gap_totals"].items()]
    lines += ["", "## Windows", "",
              "| window | attempts | probes ok | failed | records | HTTP/1 attempts | restarts | METRICS |",
              "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {w['index']} | {w['first_attempt']}–{w['last_attempt']} | {w['ok']}/{w['probes']} | "
              f"{w['failed']} | {w['records']} | {w['h1_attempts']} | {w['recoveries']} | "
              f"`{Path(w['path']).name}` |" for w in report["windows"]]
    if report["recoveries"]:
        lines += ["", "## Restarts", "", "| after attempt | reason | seconds | ok |", "|---|---|---|---|"]
        lines += [f"| {r['after_attempt']} | {r['reason']} | {fmt(r['seconds'], 2)} | "
                  f"{'yes' if r['ok'] else 'no'} |" for r in report["recoveries"]]
    if report["chaos_log"]:
        lines += ["", "## Chaos", ""] + [f"- before attempt {e['before_attempt']}: {e['what']}"
                                         for e in report["chaos_log"]]
    lines += ["", "## Gates", "", "| gate | verdict | detail |", "|---|---|---|"]
    lines += [f"| {g['name']} | {'PASS' if g['ok'] else '**FAIL**'} | {g['detail']} |"
              for g in report["gates"]]
    lines += ["", "Artifacts: " + ", ".join(f"`{Path(p).name}`" for p in report["artifacts"]), ""]
    return "\n".join(lines)


def _copy_usage(logs_dir: Path, dest: Path) -> Path:
    with open(dest, "wb") as out:
        for f in usage_files(logs_dir) if logs_dir.exists() else []:
            with open(f, "rb") as src:
                shutil.copyfileobj(src, out)
    return dest


def report(soak: Soak, reason: str, started_at: str, upstreams: str, secrets: list[str]) -> tuple[dict, bool]:
    """Write the run's artifacts; return (report, passed)."""
    out = soak.out_dir
    records, bad = read_records(soak.logs_dir) if usage_files(soak.logs_dir) else ([], 0)
    metrics = summarize(to_frame(records, bad))
    metrics_path = write_metrics(metrics, out / f"METRICS_{soak.run_name}.json")
    usage_copy = _copy_usage(soak.logs_dir, out / f"{soak.run_name}-usage.jsonl")
    probes = [p for a in soak.attempts for p in a["probes"]]
    late_rids(probes, records)
    accounting = record_accounting(probes, records)
    verdicts = _gates(soak, records, metrics_path, accounting)
    end = soak.elapsed()
    gaps = lane_gaps(soak.events, [r["after_attempt"] for r in soak.recoveries], run_end=end)
    cfg = soak.cfg
    md_path, json_path = out / f"{soak.run_name}-SOAK.md", out / f"{soak.run_name}-SOAK.json"
    artifacts = [str(md_path), str(json_path), str(metrics_path), str(usage_copy),
                 *[w["path"] for w in soak.windows]]
    failed_numbers = [a["n"] for a in soak.attempts if not a["ok"]]
    data = {
        "run": soak.run_name, "started_at": started_at, "stop_reason": reason, "upstreams": upstreams,
        "logs_dir": str(soak.logs_dir),
        "config": {"max_minutes": cfg.max_minutes, "timeout_secs": cfg.timeout_secs,
                   "sleep_between": cfg.sleep_between, "toggle_h1": cfg.toggle_h1, "kind": cfg.kind,
                   "until_successes": cfg.until_successes, "max_attempts": cfg.max_attempts,
                   "window": cfg.window, "window_minutes": cfg.window_minutes,
                   "chaos": cfg.chaos.describe()},
        "successes": dict(soak.successes),
        "totals": {"attempts": len(soak.attempts), "seconds": round(end, 3),
                   "probes": len(probes), "ok": sum(1 for p in probes if p["ok"]),
                   "failed_attempts": len(failed_numbers), "failed_attempt_numbers": failed_numbers,
                   "recoveries": len(soak.recoveries), "planned_restarts": len(soak.switches),
                   "h1_attempts": sum(1 for a in soak.attempts if a["h1"])},
        "gaps": gaps, "gap_totals": gap_totals(gaps, soak.successes),
        "record_accounting": accounting, "windows": soak.windows, "recoveries": soak.recoveries,
        "switches": soak.switches, "chaos_log": soak.chaos_log, "attempts": soak.attempts,
        "artifacts": artifacts,
    }
    verdicts.append(no_secret_in_files([metrics_path, usage_copy, *[w["path"] for w in soak.windows]],
                                       secrets))
    data["gates"] = [v._asdict() for v in verdicts]
    json_path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    md_path.write_text(render_markdown(data), encoding="utf-8")
    toggles = {"SOAK_TOGGLE_H1": int(cfg.toggle_h1), "SOAK_PROBE": cfg.kind,
               "SOAK_CHAOS": cfg.chaos.describe() if cfg.chaos.stops or cfg.chaos.outages else None}
    append_entry(out.parent, f"soak {soak.run_name}", toggles, verdicts, [md_path, json_path,
                                                                          metrics_path, usage_copy])
    print()
    print(format_verdicts(verdicts))
    return data, all(v.ok for v in verdicts)


def run(args: argparse.Namespace) -> int:
    if args.fleet:
        from harness.fleet_soak import run as run_fleet
        return run_fleet(args)
    settings = load_settings()
    try:
        chaos = parse_chaos(args.chaos)
    except ValueError as exc:
        print(f"UsageError: --chaos: {exc}", file=sys.stderr)
        return 2
    kind = args.probe or ("cli" if find_claude() else "curl")
    if kind == "cli" and not find_claude():
        print("UsageError: --probe cli: the claude CLI is not installed (make claude)", file=sys.stderr)
        return 2
    if args.probe is None and kind != "cli":
        print("[soak] the claude CLI is not installed: probing with curl", file=sys.stderr)
    if args.until_successes < 1 or args.window < 1:
        print("UsageError: --until-successes and --window must be >= 1", file=sys.stderr)
        return 2
    cfg = Config(max_minutes=args.max_minutes, timeout_secs=args.timeout_secs,
                 sleep_between=args.sleep_between, toggle_h1=args.toggle_h1, kind=kind,
                 until_successes=args.until_successes, max_attempts=args.max_attempts,
                 window=args.window, window_minutes=args.window_minutes, chaos=chaos,
                 progress=not args.no_progress)
    real = settings.allow_real_api and bool(settings.zai_api_key) and bool(
        settings.anthropic_auth_token or settings.anthropic_api_key)
    if real and chaos.outages:
        print("UsageError: --chaos outage@… needs the mock upstreams (not with ALLOW_REAL_API=1)",
              file=sys.stderr)
        return 2
    load_settings({k: os.environ[k] for k in ROUTING_TOGGLES if k in os.environ})  # ConfigError
    started_at = utc_timestamp()
    run_name = args.run or "soak-" + time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    results_dir = Path(args.results or settings.results_dir)
    # the run's own shim folder (logs, store, quota book), never the daily logs
    logs_dir = ((Path(args.logs) / "soak" / run_name).resolve() if args.logs
                else run_folder(results_dir, "soak", run_name))
    out_dir = (results_dir / "overnight").resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    mocks: tuple[MockUpstream, ...] = ()
    if real:
        # the environment's upstreams and keys; the logs go to this run's own folder
        env = run_env()
        client_auth = {"cli_token": settings.anthropic_auth_token.reveal() or None}
        upstreams, ready = "real (ALLOW_REAL_API=1)", "/healthz"
        secrets = list(settings.secrets())
    else:
        mocks = (MockUpstream("anthropic").start(), MockUpstream("zai").start())
        toggles = {k: os.environ[k] for k in ROUTING_TOGGLES if k in os.environ}
        env = {**lane_env(mocks[0].base_url, mocks[1].zai_base_url), **toggles}
        keys = test_keys()
        client_auth = {"api_key": keys["CLIENT_API_KEY"], "cli_token": keys["CLIENT_OAUTH_TOKEN"]}
        upstreams, ready = "mock", "/readyz"
        secrets = [*load_settings(env).secrets(), *keys.values()]
    soak = Soak(cfg, env, client_auth, logs_dir, out_dir, run_name, mocks,
                lanes(args.haiku_model, args.sonnet_model), ready)
    try:
        soak.say(f"run={run_name} probe={kind} upstreams={upstreams} until={cfg.until_successes}/lane "
                 f"max={cfg.max_minutes:g}min timeout={cfg.timeout_secs:g}s sleep={cfg.sleep_between:g}s "
                 f"h1_toggle={int(cfg.toggle_h1)} chaos={chaos.describe()} logs={logs_dir}")
        reason = soak.loop()
    except KeyboardInterrupt:  # Ctrl-C before the loop's own handler (the first shim's start)
        reason = "interrupted"
    except (RuntimeError, TimeoutError, OSError) as exc:
        if soak.attempts:
            raise
        print(f"[soak] the shim did not start: {exc}", file=sys.stderr)
        return 2
    finally:
        soak.close()
    data, passed = report(soak, reason, started_at, upstreams, secrets)
    t = data["totals"]
    soak.say(f"stopped: {reason} after {t['attempts']} attempt(s), {t['seconds']:.1f}s; "
             f"successes {data['successes']}; failed attempts {t['failed_attempts']}; "
             f"restarts {t['recoveries']}")
    soak.say(f"summary: {out_dir / (run_name + '-SOAK.md')}")
    if reason == "interrupted":
        return 130
    return 0 if passed else 1


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ccp soak", description=__doc__.splitlines()[0])
    p.add_argument("--max-minutes", type=float, default=_env_float("MAX_MINUTES", 480.0),
                   help="stop after this long (MAX_MINUTES, default 480)")
    p.add_argument("--timeout-secs", type=float, default=_env_float("TIMEOUT_SECS", 120.0),
                   help="per probe (TIMEOUT_SECS, default 120)")
    p.add_argument("--sleep-between", type=float, default=_env_float("SLEEP_BETWEEN", 30.0),
                   help="seconds between attempts (SLEEP_BETWEEN, default 30)")
    p.add_argument("--toggle-h1", action="store_true", default=_env_bool("SOAK_TOGGLE_H1"),
                   help="every third attempt with CCP_FORCE_H1=1 (SOAK_TOGGLE_H1=1)")
    p.add_argument("--probe", choices=PROBE_KINDS, default=os.environ.get("SOAK_PROBE") or None,
                   help="client (SOAK_PROBE; default cli when installed, else curl)")
    p.add_argument("--until-successes", type=int,
                   default=int(_env_float("SOAK_UNTIL_SUCCESSES", 1)),
                   help="stop when every lane succeeded this often (SOAK_UNTIL_SUCCESSES, default 1)")
    p.add_argument("--max-attempts", type=int, default=int(_env_float("SOAK_MAX_ATTEMPTS", 0)),
                   help="stop after this many attempts (SOAK_MAX_ATTEMPTS; 0: no limit)")
    p.add_argument("--window", type=int, default=int(_env_float("SOAK_WINDOW", 10)),
                   help="attempts per METRICS snapshot (SOAK_WINDOW, default 10)")
    p.add_argument("--window-minutes", type=float,
                   default=_env_float("SOAK_WINDOW_MINUTES", 0.0) or None,
                   help="minutes per METRICS snapshot instead (SOAK_WINDOW_MINUTES)")
    p.add_argument("--chaos", default=os.environ.get("SOAK_CHAOS", ""),
                   help="faults by attempt: kill@N, restart@N, outage@A-B[:FAULT] (SOAK_CHAOS)")
    p.add_argument("--run", help="run name (default soak-<UTC time>)")
    p.add_argument("--logs", help="folder for the run shim's logs (the run uses <LOGS>/soak/<run>/; "
                                  "default results/runs/soak/<run>/, never the daily logs)")
    p.add_argument("--results", help="results folder (default CCP_RESULTS_DIR or results)")
    p.add_argument("--haiku-model", default=HAIKU_MODEL, help="haiku model id for curl/http probes "
                   "(default %(default)s)")
    p.add_argument("--sonnet-model", default=SONNET_MODEL, help="sonnet model id for "
                   "curl/http probes (default %(default)s)")
    p.add_argument("--no-progress", action="store_true", help="no live progress line")
    p.add_argument("--fleet", action="store_true",
                   help="the fleet soak instead: 3 shims on one PostgreSQL store, a shim killed and "
                        "the database restarted under load, zero lost/duplicated records "
                        "(harness.fleet_soak; needs PostgreSQL installed)")
    p.add_argument("--fleet-requests", type=int, default=int(_env_float("SOAK_FLEET_REQUESTS", 600)),
                   help="--fleet: answered requests in all (SOAK_FLEET_REQUESTS, default 600)")
    p.add_argument("--fleet-clients", type=int, default=int(_env_float("SOAK_FLEET_CLIENTS", 4)),
                   help="--fleet: concurrent client threads (SOAK_FLEET_CLIENTS, default 4)")
    return p


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return run(args)
    except ConfigError as exc:
        print(f"ConfigError: {exc}", file=sys.stderr)
        return 2
