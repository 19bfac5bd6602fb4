"""`ccp bench`: one interleaved run of every scenario against every target, then the report.

    mock ← direct | floor | ccp | ccp-pg | litellm | ccr      (each a process of its own, on loopback)
    mock's TLS port (h2 | http/1.1 by ALPN) ← direct-tls | floor-tls | ccp-tls | ccp-tls-h2
                                              | ccp-tls-httpx-h1 | ccp-tls-aiohttp

Order: for each round, for each scenario, each target in turn (A B C A B C …), so a target and
`direct` are measured back to back and paired per round. Before any load, every target is
smoke-checked: the mock must have received every request sent through it, so no target can win by
not proxying (and each scenario re-checks that the mock's call count grew by at least the answers
counted). The https path's targets run the `tls_*` scenarios against the mock's TLS port, paired with
`direct-tls`; the mock counts their TLS handshakes and HTTP/2 calls per scenario. `ccp-pg` is ccp
with its store on a PostgreSQL server the bench starts for the run (harness.postgres) and stops at
the end, skipped with one line when PostgreSQL is not installed; its rounds are also paired with
ccp's (`matrix.store_ratios`). Exit 0 when the
bench ran (misses are reported), 1 with `--strict` and a missed target, 2 on a usage error.
"""
from __future__ import annotations

import argparse
import os
import platform
import signal
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from harness.bench import matrix, report, stats
from harness.bench.loadgen import run_load
from harness.bench.matrix import spec_for
from harness.bench.procs import run_fast
from harness.bench.targets import Ccp, CcpPg, Direct, FastMock, Floor, Target
from proxy.config.load import load_settings

DEFAULT_TARGETS = ("direct", "floor", "ccp", "ccp-pg", "ccp-aiohttp", "litellm", "ccr",
                   "direct-tls", "floor-tls", "ccp-tls", "ccp-tls-h2", "ccp-tls-httpx-h1",
                   "ccp-tls-aiohttp", "litellm-tls", "ccr-tls")
TLS_TARGETS = {  # the https path: each upstream client ccp offers, by its settings
    "ccp-tls": {},  # the defaults (the shim's own HTTP/1.1 client)
    "ccp-tls-h2": {"CCP_HTTP2": "1"},  # httpx, HTTP/2 by ALPN
    "ccp-tls-httpx-h1": {"CCP_UPSTREAM_CLIENT": "httpx", "CCP_FORCE_H1": "1"},
    "ccp-tls-aiohttp": {"CCP_UPSTREAM_CLIENT": "aiohttp"},
}


ABLATION_TARGETS = ("ccp-without-store", "ccp-without-log", "ccp-without-validate", "ccp-bare")


def make_target(name: str) -> Target:
    if name.startswith("ccp-without-"):  # e.g. ccp-without-store+log (harness.bench.ablate)
        return Ccp(name, without=tuple(name[len("ccp-without-"):].split("+")))
    if name == "ccp-bare":  # every per-request feature the ablation knows switched off
        from harness.bench.ablate import FEATURES
        return Ccp(name, without=FEATURES)
    if name in ("litellm", "ccr", "litellm-tls", "ccr-tls"):
        from harness.bench.external import CCR, LiteLLM
        return (LiteLLM if name.startswith("litellm") else CCR)(name, tls=name.endswith("-tls"))
    if name.startswith("relay-tls-"):  # a candidate upstream client (docs/upstream-clients.md)
        from harness.bench.external import CandidateRelay
        return CandidateRelay(name[len("relay-tls-"):])
    if name == "ccp-pg":  # the store on PostgreSQL (CCP_STORE_URL), a server of the run's own
        return CcpPg(name)
    if name == "ccp-aiohttp":  # the same shim on its HTTP/1.1 aiohttp upstream client
        return Ccp(name, {"CCP_UPSTREAM_CLIENT": "aiohttp"})
    if name in TLS_TARGETS:
        return Ccp(name, dict(TLS_TARGETS[name]), tls=True)
    if name in ("direct-tls", "floor-tls"):
        return (Direct if name == "direct-tls" else Floor)(name, tls=True)
    return {"direct": Direct, "floor": Floor, "ccp": Ccp}[name]()


def smoke(target: Target, mock: FastMock, body_kb: int) -> dict[str, str]:
    """Reasons by kind (`json`, `stream`, `convert`) where a request sent through `target` did not
    reach the mock or did not come back whole; empty when all did."""
    mock.configure(deltas=8)
    failed = {}
    kinds = (("json", matrix.Scenario("smoke", 2, total=10)),
             ("stream", matrix.Scenario("smoke", 2, True, total=4)),
             ("convert", matrix.Scenario("smoke", 2, convert=True, total=4)))
    counter = "tls_calls" if target.tls else "calls"  # an https target must reach the TLS port
    for kind, sc in kinds[:2] if target.tls else kinds:
        before = mock.counts()[counter]
        res = run_fast(run_load(spec_for(target, sc, body_kb)))
        got = mock.counts()[counter] - before
        if res.error_count or res.ok != sc.total or got < sc.total:
            failed[kind] = (f"smoke check failed ({kind}): {res.ok}/{sc.total} ok, "
                            f"errors {dict(res.errors)}, mock received {got}")
    return failed


def machine() -> str:
    model = "?"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{model}, {os.cpu_count()} cores, {mem:.0f} GB RAM, {platform.system()} {platform.release()}"


def describe(sc: matrix.Scenario) -> str:
    load = f"{sc.total} requests" if sc.total else f"{sc.duration:g} s"
    kind = ("Anthropic client → OpenAI provider (conversion)" if sc.convert else
            f"stream, {sc.deltas} deltas" + (f" × {sc.delay_ms} ms" if sc.delay_ms else "")
            if sc.stream else "non-stream JSON")
    if sc.body_kb:
        kind += f", {sc.body_kb} KB request body"
    if sc.tls:
        kind = "https upstream (the mock's TLS port; h2 or http/1.1 by ALPN): " + kind
    line = f"{kind}; {sc.concurrency} concurrent clients; {load} per round; hard cap {sc.cap:g} s."
    if sc.baseline:
        line += f" Added latency against `{sc.baseline[0]}` in {sc.baseline[1]} of the same round."
    return line


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="ccp bench", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="short scenarios (a few minutes in all, both paths)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds per scenario (default 3)")
    p.add_argument("--targets", default=",".join(DEFAULT_TARGETS),
                   help="comma-separated: direct,floor,ccp,ccp-pg,ccp-aiohttp,litellm,ccr; the https path: "
                        "direct-tls,floor-tls,ccp-tls,ccp-tls-h2,ccp-tls-httpx-h1,ccp-tls-aiohttp "
                        "(and the ablation rows: ccp-bare, ccp-without-FEATURE[+FEATURE…])")
    p.add_argument("--body-kb", type=int, default=64,
                   help="request body size of the large-body scenario (default %(default)s KB)")
    p.add_argument("--results-dir", default=None,
                   help="where BENCH-*.md/json go (default CCP_RESULTS_DIR or the ccp home's results)")
    p.add_argument("--no-install", action="store_true", help="skip targets not installed yet")
    p.add_argument("--no-profile", action="store_true", help="no py-spy profile on a missed target")
    p.add_argument("--strict", action="store_true", help="exit 1 when a ccp target is missed")
    p.add_argument("--ablate", action="store_true",
                   help="also run ccp with its store, usage log, body validation (and all of "
                        "them) switched off: what each costs per request")
    p.add_argument("--candidates", action="store_true",
                   help="also run the candidate upstream clients as bare relays on the https path "
                        "(relay-tls-<client>, installed into .bench/venv-candidates): "
                        "docs/upstream-clients.md")
    args = p.parse_args(argv)
    if args.rounds < 1:
        p.error("--rounds must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so the `finally` below stops every process the bench started
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    names = [n.strip() for n in args.targets.split(",") if n.strip()]
    if args.ablate:
        names += [n for n in ABLATION_TARGETS if n not in names]
    if args.candidates:
        from harness.bench.client_relays import CLIENTS
        names += [f"relay-tls-{c}" for c in CLIENTS if f"relay-tls-{c}" not in names]
    if "direct" not in names:
        names.insert(0, "direct")  # every added latency is paired with it
    if "direct-tls" not in names and any(n in TLS_TARGETS or n == "floor-tls" for n in names):
        names.insert(names.index("direct") + 1, "direct-tls")  # and on the https path, with this
    workdir = Path(tempfile.mkdtemp(prefix="ccp-bench-"))
    scenarios = matrix.scenarios(args.quick)
    mock = FastMock().start(workdir)
    live: list[Target] = []
    skipped: dict[str, str] = {}
    rounds: dict = {}
    pending: Target | None = None  # a target started but not yet live: stopped by the finally too
    try:
        for name in names:
            target = make_target(name)
            missing = getattr(target, "missing", None)
            if missing is not None and (reason := missing()):
                skipped[name] = reason
                print(f"[bench] SKIP {name}: {reason}", flush=True)
                continue
            ensure = getattr(target, "ensure", None)
            if ensure is not None:
                if args.no_install and not getattr(target, "exe", getattr(target, "cli", Path())).exists():
                    reason = "not installed (--no-install)"
                else:
                    print(f"[bench] installing {name} if needed …", flush=True)
                    reason = ensure()
                if reason:
                    skipped[name] = f"could not be installed: {reason}"
                    print(f"[bench] SKIP {name}: {skipped[name]}", flush=True)
                    continue
            pending = target
            try:
                if target.tls:
                    target.start(mock.tls_url, workdir, ca=mock.ca)
                else:
                    target.start(mock.url, workdir)
                failed = smoke(target, mock, args.body_kb)
            except Exception as exc:  # noqa: BLE001 - any failure to start skips the target
                failed = {"start": f"did not start: {type(exc).__name__}: {exc}"}
            reason = "; ".join(v for k, v in failed.items() if k != "convert")
            if "convert" in failed and not reason:  # the rest still runs; conversion is skipped
                target.no_convert = True
                skipped[f"{name} (conversion)"] = failed["convert"]
                print(f"[bench] {name}: no conversion scenario: {failed['convert']}", flush=True)
            if reason:
                skipped[name] = reason
                print(f"[bench] SKIP {name}: {reason}", flush=True)
                target.stop()
                pending = None
                continue
            print(f"[bench] {name} ready at {target.url} (smoke check passed)", flush=True)
            live.append(target)
            pending = None
        for r in range(args.rounds):
            for sc in scenarios:
                mock.configure(sc.deltas, sc.delay_ms)
                for target in live:
                    if sc.tls != target.tls or sc.convert and getattr(target, "no_convert", False):
                        continue
                    row = measure(target, sc, mock, args.body_kb)
                    rounds.setdefault(target.name, {}).setdefault(sc.name, []).append(row)
                    print(f"[bench] round {r + 1} {sc.name:<17} {target.name:<16} "
                          f"p50 {report.fmt(row['p50_ms'], 2):>8} ms  "
                          f"{report.fmt(row['rps'], 0):>6} req/s  errors {row['errors']}", flush=True)
        result = assemble(args, live, scenarios, rounds, skipped)
        cleartext = [c for c in result["checks"]
                     if not c["check"].startswith(("https:", matrix.STORE_CHECK_PREFIX))]
        if not args.no_profile and any(c["met"] is False for c in cleartext):
            ccp = next((t for t in live if t.name == "ccp"), None)
            if ccp is not None:
                from harness.bench.profile import profile_ccp
                result["profiles"] = profile_ccp(ccp, mock, cleartext, args.body_kb, workdir)
    finally:
        if pending is not None:
            pending.stop()
        for target in live:
            target.stop()
        mock.stop()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    if args.results_dir is None:
        args.results_dir = load_settings().results_dir
    md, js = report.write(result, Path(args.results_dir), stamp)
    print(report.render(result))
    print(f"\n[bench] wrote {md} and {js}")
    missed = any(c["met"] is False for c in result["checks"])
    return 1 if args.strict and missed else 0


def measure(target: Target, sc: matrix.Scenario, mock: FastMock, body_kb: int) -> dict:
    spec = spec_for(target, sc, body_kb)
    db_cpu = getattr(target, "db_cpu_s", None)  # ccp-pg: its database server's CPU, apart
    counts0, cpu0, db0 = mock.counts(), target.cpu_s(), db_cpu() if db_cpu else None
    res = run_fast(run_load(spec))
    cpu1, counts1, db1 = target.cpu_s(), mock.counts(), db_cpu() if db_cpu else None
    calls = counts1["calls"] - counts0["calls"]
    errors = res.error_count
    if calls < res.ok:  # answers the mock never sent: not proxied
        errors += res.ok - calls
    row = stats.round_row(res.latencies_ms, res.ttfb_ms, errors, res.started, res.wall_s,
                          None if cpu0 is None else cpu1 - cpu0)
    row["peak_rss_mb"] = target.peak_rss_mb()
    if db0 is not None and db1 is not None:
        row["db_cpu_ms_per_req"] = (db1 - db0) * 1000.0 / res.ok if res.ok else None
    row["error_kinds"] = dict(res.errors)
    if sc.tls:  # what the mock's TLS port saw: connections made, and how many calls came over h2
        for key in ("handshakes", "tls_calls", "h2_calls"):
            row[key] = counts1[key] - counts0[key]
    time.sleep(0.2)  # let closing connections settle before the next target
    return row


def assemble(args, live: list[Target], scenarios, rounds: dict, skipped: dict) -> dict:
    combined: dict = {}
    for target in live:
        for sc in scenarios:
            rows = rounds.get(target.name, {}).get(sc.name)
            if not rows:
                continue
            base, base_sc = sc.pair()  # each path's added latency, against its own no-proxy rounds
            pair = rounds.get(base, {}).get(base_sc) if target.name != base else None
            c = stats.combine(rows, pair)
            c["peak_rss_mb"] = max((r["peak_rss_mb"] for r in rows if r["peak_rss_mb"]), default=None)
            if any("db_cpu_ms_per_req" in r for r in rows):
                c["db_cpu_ms_per_req"] = stats.median_of(r.get("db_cpu_ms_per_req") for r in rows)
            store_base = matrix.STORE_PAIRS.get(target.name)
            if store_base is not None:  # the same shim on the other store, in the same rounds
                c["p50_vs_base_ms"] = stats.paired_added(
                    rows, rounds.get(store_base, {}).get(sc.name) or [], "p50_ms")
            if sc.tls:
                c.update(stats.tls_counts(rows))
            combined.setdefault(target.name, {})[sc.name] = c
    import aiohttp
    versions = {"aiohttp": aiohttp.__version__}
    versions.update({t.name: t.version for t in live if t.version})
    for mod in ("uvloop", "orjson", "jiter"):
        try:
            versions[mod] = __import__(mod).__version__
        except ImportError:
            versions[mod] = "not installed"
    meta = {"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "machine": machine(),
            "python": platform.python_version(), "mode": "quick" if args.quick else "full",
            "rounds": args.rounds, "body_kb": args.body_kb, "versions": versions}
    return {"meta": meta, "targets": [t.name for t in live], "skipped": skipped,
            "scenarios": [{"name": sc.name, "describe": describe(sc), **sc.__dict__} for sc in scenarios],
            "combined": combined, "rounds": rounds, "checks": matrix.checks(combined),
            "ablation": matrix.ablation(combined), "tls_ratios": matrix.tls_ratios(combined),
            "store_ratios": matrix.store_ratios(combined)}


if __name__ == "__main__":
    sys.exit(main())
