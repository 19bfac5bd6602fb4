"""`ccp soak --fleet`: three shims on one PostgreSQL store, a shim killed and the database restarted
under load, then every record counted.

A PostgreSQL server of the run's own (harness.postgres: initdb in a temporary folder, a free
loopback port), the built-in mock upstreams, and `SHIMS` real shims (`ccp serve`, `CCP_STORE_URL` on
one database, `CCP_INSTANCE` f0, f1, f2, each its own logs folder). A bounded load: `--fleet-clients`
threads send requests round-robin over the shims as a load balancer would (haiku and sonnet in
turn, every third one streamed); a request a shim could not answer (it was killed under it) is sent
again to the next shim, as a balancer retries. The load never pauses; the chaos comes by answers
counted (`plan`: a quarter of `--fleet-requests` per phase): after the first quarter shim f1 is
SIGKILLed and started again with the same logs folder and port (so its start reconciles its
usage.jsonl with the store); a quarter after it is back, PostgreSQL is stopped (`pg_ctl stop -m
fast`); a quarter later it is started again on the same port; a quarter after that the load stops.
What is answered while the shim restarts comes on top.

Then, once the store has caught up (a bounded wait), the books are compared (`account`): every
request the load generator got an answer for (by its `x-ccp-request-id`) and every record of each
shim's usage.jsonl must be in the store exactly once, under the instance that answered it. Lost,
duplicated, unrecorded (answered, in no JSONL), misattributed and phantom (in the store, in no
JSONL) are counted and must all be 0. Artifacts: `results/overnight/<run>-FLEET.json` and
`<run>-FLEET.md`, an entry in `results/TESTS.md`; the shims' folders under `<logs>/soak/<run>/`
(default `results/runs/soak/<run>/`). Exit 0 when every gate passes, 1 when one fails, 2 when it
could not run (PostgreSQL not installed, a bad option, a shim that did not start).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import httpx

from harness.gates import GateResult, format_verdicts
from harness.keys import lane_env, test_keys
from harness.mock_upstream import MockUpstream
from harness.postgres import SKIP_REASON, PostgresServer, find_bin_dir
from harness.shim import ShimProcess, run_folder, wait_until
from proxy.config.load import load_settings
from proxy.core.record import CONTROL_OP, utc_timestamp
from proxy.sinks.usage_log import usage_records
from reports.results_log import append_entry

SHIMS = 3
KILLED = 1  # the shim killed in the middle (f1)
DATABASE = "fleet"
MODELS = ("claude-haiku-4-5-20251001", "claude-sonnet-4-5-20250929")  # the zai and anthropic lanes
REQUEST_TIMEOUT = 30.0
PHASE_TIMEOUT = 120.0  # the most a phase of the load may take to reach its next mark
CATCH_UP = 30.0  # the most the store may take to hold every record once the load is over
MIN_REQUESTS = 12
IMPORTED = re.compile(r"(\d+) record\(s\) of the usage log's last (\d+) imported")


PHASES = ("before the kill", "after the restart", "the database away", "after the database start")


class Plan(NamedTuple):
    """The answers each phase of the load runs for, in PHASES' order (the chaos between them)."""

    requests: int
    per_phase: int

    @property
    def hard_cap(self) -> int:
        """Requests sent at most, whatever happens (a fleet that never recovers ends the load)."""
        return self.requests * 20


def plan(requests: int) -> Plan:
    """A quarter of the requests per phase."""
    if requests < MIN_REQUESTS:
        raise ValueError(f"--fleet-requests must be at least {MIN_REQUESTS}, got {requests}")
    return Plan(requests, requests // len(PHASES))


def instance_name(i: int) -> str:
    return f"f{i}"


def account(answered: Iterable[str], jsonl: Mapping[str, Iterable[str]],
            stored: Iterable[tuple[str, str | None]]) -> dict:
    """The books compared (pure). `answered`: the rids the load generator got an answer with;
    `jsonl`: each instance's usage.jsonl rids; `stored`: the store's (rid, instance) rows.

    lost = answered or logged, not in the store; duplicated = a rid stored more than once, or logged
    more than once (twice in a file, or by two shims); unrecorded = answered, in no JSONL;
    misattributed = stored under another instance than the one whose JSONL has it; phantom = stored,
    in no JSONL."""
    answered = list(answered)
    jsonl = {inst: list(rids) for inst, rids in jsonl.items()}
    logged: Counter = Counter()
    owner: dict[str, str] = {}
    for inst, rids in jsonl.items():
        for rid in rids:
            logged[rid] += 1
            owner[rid] = inst
    rows = list(stored)
    in_store = Counter(rid for rid, _ in rows)
    stored_by = {rid: inst for rid, inst in rows}
    expected = set(answered) | set(logged)
    lost = sorted(expected - set(in_store))
    duplicated = sorted({rid for rid, n in in_store.items() if n > 1}
                        | {rid for rid, n in logged.items() if n > 1})
    return {
        "answered": len(answered), "answered_unique": len(set(answered)),
        "answered_twice": sorted(r for r, n in Counter(answered).items() if n > 1),
        "jsonl_records": sum(logged.values()),
        "jsonl_by_instance": {inst: len(rids) for inst, rids in jsonl.items()},
        "stored_rows": len(rows),
        "stored_by_instance": dict(sorted(Counter(inst or "?" for _, inst in rows).items())),
        "expected": len(expected),
        "lost": lost, "duplicated": duplicated,
        "unrecorded": sorted(set(answered) - set(logged)),
        "misattributed": sorted(rid for rid, inst in owner.items()
                                if rid in stored_by and stored_by[rid] != inst),
        "phantom": sorted(set(in_store) - set(logged)),
    }


CHAOS = ("kill", "restart", "db_stop", "db_start")


def phase_answers(events: list[dict], end_answers: int) -> dict[str, int]:
    """Answers per phase (PHASES) from the answer counts the events were logged at (pure): before
    the kill, from the restart's end to the database stop, while it was away, after its start."""
    at = {e["what"]: e for e in events}
    marks = [0, at["kill"]["answers"]] if "kill" in at else []
    if all(w in at for w in CHAOS):
        ends = [at["restart"]["answers_after"], at["db_stop"]["answers"],
                at["db_stop"]["answers_after"], at["db_start"]["answers"],
                at["db_start"]["answers_after"], end_answers]
        return {PHASES[0]: marks[1], PHASES[1]: ends[1] - ends[0], PHASES[2]: ends[3] - ends[2],
                PHASES[3]: ends[5] - ends[4]}
    return {}


def gates(acc: dict, p: Plan, events: list[dict], phases: dict[str, int]) -> list[GateResult]:
    """The verdicts over `account()`'s books and the chaos that was applied (pure)."""
    def listed(rids: list[str]) -> str:
        return ", ".join(rids[:5]) + (f" (+{len(rids) - 5} more)" if len(rids) > 5 else "")

    out = [GateResult("fleet_load",
                      acc["answered_unique"] >= p.requests and not acc["answered_twice"],
                      f"{acc['answered_unique']} answers with distinct rids (at least "
                      f"{p.requests})" + (f"; answered twice: {listed(acc['answered_twice'])}"
                                          if acc["answered_twice"] else ""))]
    done = {e["what"] for e in events}
    missing = [c for c in CHAOS if c not in done]
    short = {ph: n for ph, n in phases.items() if n < p.per_phase}
    ok = not missing and bool(phases) and not short
    out.append(GateResult(
        "fleet_chaos", ok,
        "shim killed and restarted, database stopped and started, each under load: answers "
        + ", ".join(f"{ph} {n}" for ph, n in phases.items()) if ok else
        f"not done: {', '.join(missing)}" if missing else
        f"phases under {p.per_phase} answers: {short or 'none counted'}"))
    for key, what in (("lost", "answered or logged, not in the store"),
                      ("duplicated", "stored or logged more than once"),
                      ("unrecorded", "answered, in no shim's usage.jsonl"),
                      ("misattributed", "stored under another instance"),
                      ("phantom", "in the store, in no usage.jsonl")):
        rids = acc[key]
        out.append(GateResult(f"fleet_{key}", not rids,
                              f"0 {what} (of {acc['expected']} records)" if not rids
                              else f"{len(rids)} {what}: {listed(rids)}"))
    return out


def render_markdown(report: dict) -> str:
    """The fleet soak's summary page (pure)."""
    acc, t = report["accounting"], report["totals"]
    lines = [f"# Fleet soak {report['run']}", "",
             f"- started {report['started_at']}; {SHIMS} shims on one PostgreSQL store "
             f"(server {report['postgres']}); mock upstreams; {t['clients']} clients round-robin",
             f"- requests: {t['requests']} planned, {acc['answered_unique']} answered "
             f"({t['ok']} with 200), {t['retried']} sent again to the next shim after a failure; "
             f"{fmt_s(t['seconds'])} s of load",
             f"- records: {acc['jsonl_records']} in the usage.jsonl files "
             f"{acc['jsonl_by_instance']}, {acc['stored_rows']} rows in the store "
             f"{acc['stored_by_instance']}; the store held all of them "
             f"{fmt_s(t['caught_up_s'])} s after the load ended",
             f"- **lost {len(acc['lost'])}, duplicated {len(acc['duplicated'])}**, unrecorded "
             f"{len(acc['unrecorded'])}, misattributed {len(acc['misattributed'])}, phantom "
             f"{len(acc['phantom'])}",
             f"- the restarted shim's reconcile imported: {report['reconciled']}",
             "- answers per phase: " + (", ".join(f"{ph} {n}" for ph, n in report["phases"].items())
                                        or "–"), "",
             "## Chaos", "", "| at (s) | answers then | what | seconds | detail |",
             "|---|---|---|---|---|"]
    lines += [f"| {fmt_s(e['at_s'])} | {e['answers']} | {e['what']} | {fmt_s(e.get('seconds'))} | "
              f"{e.get('detail', '')} |" for e in report["events"]]
    lines += ["", "## Gates", "", "| gate | verdict | detail |", "|---|---|---|"]
    lines += [f"| {g['name']} | {'PASS' if g['ok'] else '**FAIL**'} | {g['detail']} |"
              for g in report["gates"]]
    return "\n".join(lines) + "\n"


def fmt_s(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


# --- the run ----------------------------------------------------------------------------------------

def jsonl_rids(shim: ShimProcess) -> list[str]:
    """The model-request rids of a shim's usage log (the files, not what the shim says)."""
    if not shim.logs_dir.exists():
        return []
    records, _ = usage_records(shim.logs_dir)
    return [r["rid"] for r in records if r.get("op") != CONTROL_OP and r.get("rid")]


def stored_rows(url: str) -> list[tuple[str, str | None]]:
    import psycopg
    with psycopg.connect(url, connect_timeout=5) as conn:
        return [(r[0], r[1]) for r in conn.execute("SELECT rid, instance FROM samples")]


def imported_at_start(shim: ShimProcess, since: int) -> str:
    """What the restarted shim's reconcile said (its stderr after byte `since`)."""
    try:
        with open(shim.stderr_path, "rb") as fh:
            fh.seek(since)
            text = fh.read().decode(errors="replace")
    except OSError:
        return "its log could not be read"
    hits = IMPORTED.findall(text)
    if not hits:
        return "nothing (the store had every record of its log)"
    added, read = hits[-1]
    return f"{added} record(s) of the last {read} in its usage.jsonl"


class Load:
    """`clients` threads sending until `stop` (or `total` requests), round-robin over `urls` (read
    per request, so a shim restarted on another port is found); a transport failure goes on to the
    next shim."""

    def __init__(self, urls: list[str], api_key: str, total: int, clients: int) -> None:
        self.urls = urls
        self.api_key = api_key
        self.total = total  # requests sent at most (the hard cap)
        self.clients = clients
        self.lock = threading.Lock()
        self.sent = 0
        self.answers: list[dict] = []  # rid, shim, status, ok, at_s
        self.failures: list[dict] = []  # shim, error, at_s
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self.t0 = time.monotonic()

    def count(self) -> int:
        with self.lock:
            return len(self.answers)

    def start(self) -> Load:
        self.t0 = time.monotonic()
        self.threads = [threading.Thread(target=self._client, daemon=True, name=f"fleet-load-{j}")
                        for j in range(self.clients)]
        for t in self.threads:
            t.start()
        return self

    def join(self, timeout: float = REQUEST_TIMEOUT + 10, stop: bool = True) -> None:
        """Stop the clients (or, `stop=False`, let them reach `total`) and wait for them."""
        if stop:
            self.stop.set()
        for t in self.threads:
            t.join(timeout)

    def _next(self) -> int | None:
        with self.lock:
            if self.sent >= self.total or self.stop.is_set():
                return None
            i = self.sent
            self.sent += 1
            return i

    def _client(self) -> None:
        headers = {"x-api-key": self.api_key, "anthropic-version": "2023-06-01",
                   "content-type": "application/json"}
        with httpx.Client(trust_env=False, timeout=REQUEST_TIMEOUT, headers=headers) as client:
            while (i := self._next()) is not None:
                body = {"model": MODELS[i % 2], "max_tokens": 16, "stream": i % 3 == 2,
                        "messages": [{"role": "user", "content": f"fleet request {i}: say ok"}]}
                for hop in range(SHIMS):  # the shim in turn, then the next ones (a balancer's retry)
                    k = (i + hop) % SHIMS
                    if self._send(client, k, body):
                        break

    def _send(self, client: httpx.Client, k: int, body: dict) -> bool:
        try:
            resp = client.post(f"{self.urls[k]}/v1/messages", json=body)
            text = resp.text
        except httpx.TransportError as exc:
            with self.lock:
                self.failures.append({"shim": instance_name(k), "error": type(exc).__name__,
                                      "at_s": round(time.monotonic() - self.t0, 3)})
            return False
        rid = resp.headers.get("x-ccp-request-id")
        if not rid:  # an answer that is not the shim's (none is expected): counted as a failure
            with self.lock:
                self.failures.append({"shim": instance_name(k), "error": f"no rid ({resp.status_code})",
                                      "at_s": round(time.monotonic() - self.t0, 3)})
            return False
        whole = "message_stop" in text if body["stream"] else '"content"' in text
        with self.lock:
            self.answers.append({"rid": rid, "shim": instance_name(k), "status": resp.status_code,
                                 "ok": resp.status_code == 200 and whole,
                                 "at_s": round(time.monotonic() - self.t0, 3)})
        return True


class FleetSoak:
    def __init__(self, logs_dir: Path, requests: int, clients: int) -> None:
        self.logs_dir = logs_dir
        self.plan = plan(requests)
        self.clients = clients
        self.server: PostgresServer | None = None
        self.mocks: tuple[MockUpstream, ...] = ()
        self.shims: list[ShimProcess] = []
        self.url = ""
        self.env: dict[str, str] = {}
        self.events: list[dict] = []
        self.load: Load | None = None
        self.reconciled = "not restarted"

    def say(self, text: str) -> None:
        print(f"[soak --fleet] {text}", flush=True)

    def setup(self) -> None:
        self.server = PostgresServer().start()
        self.url = self.server.database(DATABASE)
        self.mocks = (MockUpstream("anthropic").start(), MockUpstream("zai").start())
        self.env = {**lane_env(self.mocks[0].base_url, self.mocks[1].zai_base_url),
                    "CCP_STORE_URL": self.url}
        self.shims = [self._shim(i) for i in range(SHIMS)]
        with ThreadPoolExecutor(SHIMS) as pool:
            for f in [pool.submit(s.start) for s in self.shims]:
                f.result()
        self.say(f"{SHIMS} shims on {self.url}: " + ", ".join(s.url for s in self.shims))

    def _shim(self, i: int, port: int = 0) -> ShimProcess:
        return ShimProcess(self.logs_dir / instance_name(i),
                           {**self.env, "CCP_INSTANCE": instance_name(i)}, ready_path="/readyz",
                           port=port)

    def _event(self, what: str, t: float, answers: int, **extra) -> dict:
        """Log what was done at monotonic `t`, with `answers` then and `answers_after` now."""
        assert self.load is not None
        entry = {"what": what, "at_s": round(t - self.load.t0, 3), "answers": answers,
                 "answers_after": self.load.count(), **extra}
        self.events.append(entry)
        self.say(f"{what} at {entry['at_s']:.2f}s after {entry['answers']} answers"
                 + (f" ({entry['seconds']:.2f}s)" if "seconds" in entry else "")
                 + (f": {entry['detail']}" if entry.get("detail") else ""))
        return entry

    def _phase(self, what: str) -> None:
        """Until the load has answered a phase's worth more (PHASE_TIMEOUT at most)."""
        assert self.load is not None
        load, want = self.load, self.load.count() + self.plan.per_phase
        wait_until(lambda: load.count() >= want or not any(t.is_alive() for t in load.threads),
                   PHASE_TIMEOUT, f"{want} answers ({what})", interval=0.01)
        if load.count() < want:
            raise RuntimeError(f"the load ended after {load.count()} answers ({what}): "
                               f"{load.failures[-1:] or 'no failure'}")

    def _kill_and_restart(self) -> None:
        assert self.load is not None
        old = self.shims[KILLED]
        assert old.proc is not None and old.port is not None
        t, n = time.monotonic(), self.load.count()
        old.proc.kill()
        old.proc.wait(10)
        self._event("kill", t, n, detail=f"SIGKILL {instance_name(KILLED)} pid {old.proc.pid}")
        old.stop()  # (closes its pipes; the process is gone)
        since = old.stderr_path.stat().st_size if old.stderr_path.exists() else 0
        t, n = time.monotonic(), self.load.count()
        try:
            new = self._shim(KILLED, port=old.port).start()
        except RuntimeError:  # the old port is taken: any port (the load reads the URL per request)
            new = self._shim(KILLED).start()
        self.shims[KILLED] = new
        self.load.urls[KILLED] = new.url
        self.reconciled = imported_at_start(new, since)
        self._event("restart", t, n, seconds=round(time.monotonic() - t, 3),
                    detail=f"pid {new.proc.pid if new.proc else '?'} on port {new.port}, same logs "
                           f"folder; reconcile imported {self.reconciled}")

    def _database_outage(self) -> None:
        assert self.server is not None and self.load is not None
        t, n = time.monotonic(), self.load.count()
        self.server.stop()
        self._event("db_stop", t, n, seconds=round(time.monotonic() - t, 3), detail="pg_ctl stop -m fast")
        self._phase(PHASES[2])
        t, n = time.monotonic(), self.load.count()
        self.server.start()
        self._event("db_start", t, n, seconds=round(time.monotonic() - t, 3),
                    detail=f"same cluster, port {self.server.port}")

    def run(self) -> dict:
        p = self.plan
        self.load = Load([s.url for s in self.shims], test_keys()["CLIENT_API_KEY"], p.hard_cap,
                         self.clients).start()
        try:
            self._phase(PHASES[0])
            self._kill_and_restart()
            self._phase(PHASES[1])
            self._database_outage()
            self._phase(PHASES[3])
            end_answers = self.load.count()
        finally:
            self.load.join()
        load_s = time.monotonic() - self.load.t0
        answered = [a["rid"] for a in self.load.answers]
        expected = set(answered)
        t = time.monotonic()

        def caught_up():
            logged = {rid for s in self.shims for rid in jsonl_rids(s)}
            rows = stored_rows(self.url)
            return (expected | logged) <= {rid for rid, _ in rows} and rows

        try:
            wait_until(caught_up, CATCH_UP, "every record in the store", interval=0.1)
            caught = round(time.monotonic() - t, 3)
        except TimeoutError:
            caught = None  # reported as lost below
        acc = account(answered, {instance_name(i): jsonl_rids(s) for i, s in enumerate(self.shims)},
                      stored_rows(self.url))
        return {"accounting": acc, "load_s": load_s, "caught_up_s": caught,
                "phases": phase_answers(self.events, end_answers)}

    def close(self) -> None:
        for shim in self.shims:
            if shim.proc is not None:
                shim.stop()
        for mock in self.mocks:
            mock.stop()
        if self.server is not None:
            self.server.close()


def run(args: argparse.Namespace) -> int:
    """`ccp soak --fleet` (harness.soak hands its arguments over)."""
    try:
        plan(args.fleet_requests)
        if args.fleet_clients < 1:
            raise ValueError(f"--fleet-clients must be at least 1, got {args.fleet_clients}")
    except ValueError as exc:
        print(f"UsageError: {exc}", file=sys.stderr)
        return 2
    if find_bin_dir() is None:
        print(f"[soak --fleet] skipped: {SKIP_REASON}", file=sys.stderr)
        return 2
    started_at = utc_timestamp()
    run_name = args.run or "fleet-" + time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    results_dir = Path(args.results or load_settings().results_dir)
    logs_dir = ((Path(args.logs) / "soak" / run_name).resolve() if args.logs
                else run_folder(results_dir, "soak", run_name))
    out_dir = (results_dir / "overnight").resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    soak = FleetSoak(logs_dir, args.fleet_requests, args.fleet_clients)
    try:
        try:
            soak.setup()
        except (RuntimeError, TimeoutError, OSError) as exc:
            print(f"[soak --fleet] the fleet did not start: {exc}", file=sys.stderr)
            return 2
        result = soak.run()
        postgres = f"127.0.0.1:{soak.server.port}" if soak.server else "?"
    except KeyboardInterrupt:
        print("[soak --fleet] interrupted", file=sys.stderr)
        return 130
    finally:
        soak.close()
    load = soak.load
    assert load is not None
    acc = result["accounting"]
    verdicts = gates(acc, soak.plan, soak.events, result["phases"])
    md_path, json_path = out_dir / f"{run_name}-FLEET.md", out_dir / f"{run_name}-FLEET.json"
    data = {"run": run_name, "started_at": started_at, "postgres": postgres,
            "logs_dir": str(logs_dir), "plan": soak.plan._asdict(),
            "totals": {"requests": args.fleet_requests, "clients": args.fleet_clients,
                       "ok": sum(1 for a in load.answers if a["ok"]),
                       "retried": len(load.failures), "seconds": round(result["load_s"], 3),
                       "caught_up_s": result["caught_up_s"]},
            "phases": result["phases"], "accounting": acc, "events": soak.events,
            "reconciled": soak.reconciled,
            "failures": load.failures, "gates": [v._asdict() for v in verdicts],
            "artifacts": [str(md_path), str(json_path)]}
    json_path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    md_path.write_text(render_markdown(data), encoding="utf-8")
    append_entry(out_dir.parent, f"soak --fleet {run_name}",
                 {"SOAK_FLEET_REQUESTS": args.fleet_requests}, verdicts, [md_path, json_path])
    print(format_verdicts(verdicts))
    soak.say(f"requests {acc['answered_unique']} answered, records {acc['jsonl_records']} logged, "
             f"{acc['stored_rows']} stored; lost {len(acc['lost'])}, duplicated "
             f"{len(acc['duplicated'])}; summary: {md_path}")
    return 0 if all(v.ok for v in verdicts) else 1
