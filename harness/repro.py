"""`ccp repro`: the main job — mock upstreams (or real ones), the shim, probes, METRICS, gates.

With no keys it runs entirely on loopback: two mock upstreams (anthropic, and zai under its
`/api/anthropic` prefix), the real `ccp serve` process, haiku and sonnet probes through the real
`claude` CLI, real curl, raw HTTP and the official SDK (stream and non-stream), one long SSE stream,
(`--front mitm`: the same probes keep https://api.anthropic.com and go through `ccp mitm` as
HTTPS_PROXY to TLS mocks; artifacts are named `mitm_repro`),
then `results/METRICS_<run>.json`, `results/<run>-SUMMARY.md`, a copy of the run's usage log, and the
gate verdicts. Exit 1 when a gate fails. The run's shim keeps its usage log, store and quota book in
`results/runs/<run>/` (emptied first), never in the daily `logs/`: a repro beside a running `ccp up`
leaves that shim's files and quotas alone. Ctrl-C stops the probes, the shim and the mocks, and the
run still writes what it has and its `results/TESTS.md` entry (exit 130). With `ALLOW_REAL_API=1` and real keys in the environment the
shim talks to the real upstreams instead. `--quick` is 1× haiku and 1× sonnet through the CLI only.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx

from harness.cli_probe import claude_version, find_claude
from harness.gates import (
    GateResult,
    format_verdicts,
    no_secret_in_files,
    providers_resolve,
    readyz_ok,
    rotated_before_run,
    run_gates,
)
from harness.hygiene import check_anthropic_calls, check_zai_calls
from harness.keys import lane_env, test_keys
from harness.mock_upstream import MockUpstream
from harness.probe_kinds import probe
from harness.probes import ProbeResult, attach_records
from harness.progress import progress_bar
from harness.shim import FRONTS, HttpsProxy, front_process, run_env, run_folder
from proxy.cli.providers import providers_view
from proxy.config.load import load_settings
from proxy.core.parse import ConfigError
from proxy.core.record import utc_timestamp
from proxy.sinks.usage_log import rotate_usage
from reports.results_log import append_entry
from reports.summarize import render_summary, summarize, write_metrics
from reports.usage_io import read_records, to_frame

HAIKU_MODEL = "claude-haiku-4-5-20251001"
SONNET_MODEL = "claude-sonnet-4-5-20250929"
LONG_STREAM_DELTAS = 2000
KINDS = ("cli", "curl", "http", "sdk")
TOGGLES = ("FORCE_HAIKU_TO_ZAI", "OFFLOAD_PAUSED", "ZAI_HEADER_MODE", "MITM_FILTER_CHAIN",
           "MITM_FORCE_H1", "ENABLE_BODY_TEE")


@dataclass
class Planned:
    kind: str
    model: str
    stream: bool
    expect_lane: str
    token: str
    deltas: int | None = None


def plan(rounds: int, haiku: str, sonnet: str, long_stream: bool,
         kinds: tuple[str, ...] = KINDS) -> list[Planned]:
    """Per round and model: the CLI (it always streams), curl and one of http/sdk, each stream and
    non-stream; then one long SSE stream. Models for the CLI are its aliases (`haiku`, `sonnet`)."""
    items: list[Planned] = []
    for r in range(rounds):
        library = ("http", "sdk")[r % 2]
        for model, alias, lane in ((haiku, "haiku", "zai"), (sonnet, "sonnet", "anthropic")):
            family = alias.upper()
            if "cli" in kinds:
                items.append(Planned("cli", alias, True, lane, f"CCP_{family}_CLI{r + 1}"))
            for kind in ("curl", library):
                if kind not in kinds:
                    continue
                for stream in (False, True):
                    token = f"CCP_{family}_{kind.upper()}_{'S' if stream else 'N'}{r + 1}"
                    items.append(Planned(kind, model, stream, lane, token))
    if long_stream and "http" in kinds:
        items.append(Planned("http", sonnet, True, "anthropic", "CCP_REPRO_LONG", LONG_STREAM_DELTAS))
    return items


def quick_plan() -> list[Planned]:
    """1× haiku and 1× sonnet through the CLI (the operators' repro-go-quick)."""
    return [Planned("cli", "haiku", True, "zai", "CCP_QUICK_HAIKU"),
            Planned("cli", "sonnet", True, "anthropic", "CCP_QUICK_SONNET")]


def _fire(item: Planned, base_url: str, client_auth: dict, cli_timeout: float,
          via: HttpsProxy | None = None) -> ProbeResult:
    prompt = f"Reply with exactly: {item.token} and nothing else."
    if item.kind == "cli":
        return probe("cli", base_url, item.model, prompt, timeout=cli_timeout,
                     auth_token=client_auth.get("cli_token"), via=via)
    kw = {"stream": item.stream, "api_key": client_auth.get("api_key"), "via": via}
    if item.deltas:
        kw["extra_headers"] = {"x-mock-deltas": str(item.deltas)}
    return probe(item.kind, base_url, item.model, prompt, **kw)


def _probe_checks(items: list[Planned], results: list[ProbeResult], found: dict[int, dict],
                  records: list[dict]) -> list[GateResult]:
    problems: list[str] = []
    lane_problems: list[str] = []
    for i, (item, res) in enumerate(zip(items, results)):
        label = f"{item.kind}/{item.model}/{'stream' if item.stream else 'nonstream'}"
        if not res.ok:
            problems.append(f"{label}: status {res.status} {res.error or ''}".strip())
        elif item.deltas is None and res.text.strip() != item.token:
            problems.append(f"{label}: answered {res.text[:40]!r}, expected {item.token!r}")
        rec = found.get(i)
        if rec is None:
            lane_problems.append(f"{label}: no usage record found")
        elif rec.get("lane") != item.expect_lane:
            lane_problems.append(f"{label}: lane {rec.get('lane')}, expected {item.expect_lane}")
    extra = len(records) - len(found)
    if extra > 0:
        lane_problems.append(f"{extra} record(s) belong to no probe")
    return [
        GateResult("probes_answered", not problems,
                   f"{len(results)} probe(s) answered as asked" if not problems
                   else "; ".join(problems[:3])),
        GateResult("probes_routed", not lane_problems,
                   "every probe has one record on the expected lane" if not lane_problems
                   else "; ".join(lane_problems[:3])),
    ]


def _mock_cas(mocks: tuple[MockUpstream, MockUpstream], folder: Path) -> Path:
    """One PEM with both TLS mocks' CAs (CCP_CA_BUNDLE for the front that talks to them)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / "mock-cas.pem"
    out.write_text("".join(Path(m.ca_path).read_text() for m in mocks))
    return out


def _long_stream_check(items: list[Planned], results: list[ProbeResult],
                       anthropic_mock: MockUpstream) -> GateResult:
    longs = [res for item, res in zip(items, results) if item.deltas]
    if not longs:
        return GateResult("long_sse_byte_exact", True, "no long stream planned")
    res = longs[0]
    sent = [c.sent for c in anthropic_mock.calls
            if c.json and "CCP_REPRO_LONG" in str(c.json.get("messages"))]
    ok = len(sent) == 1 and sent[0] == res.raw
    detail = (f"{len(res.raw)} bytes relayed identically" if ok else
              f"client got {len(res.raw)} bytes, mock sent {[len(s) for s in sent]}")
    return GateResult("long_sse_byte_exact", ok, detail)


def _hygiene_checks(mocks: tuple[MockUpstream, MockUpstream], mode: str) -> list[GateResult]:
    keys = test_keys()
    anth, zai = mocks
    return [check_zai_calls([c.headers for c in zai.calls], keys["ZAI_API_KEY"],
                            [keys["ANTHROPIC_AUTH_TOKEN"], keys["CLIENT_API_KEY"],
                             keys["CLIENT_OAUTH_TOKEN"]], mode),
            check_anthropic_calls([c.headers for c in anth.calls], keys["ZAI_API_KEY"])]


def _print_table(items: list[Planned], results: list[ProbeResult], found: dict[int, dict]) -> None:
    print(f"{'probe':<6}{'model':<28}{'op':<10}{'status':<7}{'lane':<10}{'decision':<15}"
          f"{'ttfb_ms':>9}{'latency_ms':>11}")
    for i, (item, res) in enumerate(zip(items, results)):
        rec = found.get(i, {})
        print(f"{item.kind:<6}{item.model[:27]:<28}{'stream' if item.stream else 'nonstream':<10}"
              f"{str(res.status):<7}{str(rec.get('lane')):<10}{str(rec.get('decision')):<15}"
              f"{_num(rec.get('ttfb_ms')):>9}{_num(rec.get('latency_ms')):>11}")


def _num(value) -> str:
    return f"{value:.1f}" if isinstance(value, (int, float)) else "-"


def _versions(cli_binary: str | None) -> dict:
    from importlib.metadata import PackageNotFoundError, version
    try:
        ccp_version = version("ccp")
    except PackageNotFoundError:
        ccp_version = "unknown"
    return {"ccp": ccp_version, "claude": claude_version(cli_binary) if cli_binary else None,
            "python": sys.version.split()[0], "curl": shutil.which("curl") is not None}


def _readyz(url: str) -> dict | None:
    try:
        return httpx.get(url, timeout=10, trust_env=False).json()
    except (httpx.HTTPError, ValueError):
        return None


def run(args: argparse.Namespace) -> int:
    settings = load_settings()
    results_dir = Path(args.results or settings.results_dir).resolve()
    mitm = args.front == "mitm"
    run_name = args.run or ("mitm_" if mitm else "") + ("repro_quick" if args.quick else "repro")
    # the run's own folder, never the daily logs (their usage log, store and quota book stay as they are)
    logs_dir = Path(args.logs).resolve() if args.logs else run_folder(results_dir, run_name)
    real = settings.allow_real_api and bool(settings.zai_api_key) and bool(
        settings.anthropic_auth_token or settings.anthropic_api_key)
    if settings.allow_real_api and not real:
        print("[repro] ALLOW_REAL_API=1 but ZAI_API_KEY and an Anthropic credential are not both "
              "set: using the mock upstreams", file=sys.stderr)
    rotated = rotate_usage(logs_dir)
    print(f"[repro] run={run_name} front={args.front} logs={logs_dir}"
          + (f" (previous usage rotated to {rotated.name})" if rotated else ""))
    run_started = utc_timestamp()

    cli_binary = find_claude()
    kinds = tuple(k for k in args.kinds.split(",") if k) if args.kinds else KINDS
    skipped: list[str] = []
    if "cli" in kinds and not cli_binary:
        kinds = tuple(k for k in kinds if k != "cli")
        skipped.append("cli probes: the claude CLI is not installed (make claude)")
    mocks: tuple[MockUpstream, MockUpstream] | None = None
    toggles = {k: os.environ[k] for k in TOGGLES if k in os.environ}
    if real:
        env = run_env()
        # the CLI carries the operator's own credential; curl/http/sdk send none, so the shim adds it
        client_auth = {"cli_token": settings.anthropic_auth_token.reveal() or None}
        print("[repro] upstreams: REAL (ALLOW_REAL_API=1)")
    else:
        # HTTPS_PROXY mode reaches its upstreams over TLS, as it would reach the real ones
        mocks = (MockUpstream("anthropic", tls=mitm).start(), MockUpstream("zai", tls=mitm).start())
        env = {**lane_env(mocks[0].base_url, mocks[1].zai_base_url), **toggles}
        if mitm:
            env["CCP_CA_BUNDLE"] = str(_mock_cas(mocks, logs_dir))
        client_auth = {"api_key": test_keys()["CLIENT_API_KEY"],
                       "cli_token": test_keys()["CLIENT_OAUTH_TOKEN"]}
        print(f"[repro] upstreams: mock anthropic={mocks[0].base_url} zai={mocks[1].zai_base_url}")
    for line in skipped:
        print(f"[repro] SKIP {line}")

    if args.quick:
        items = quick_plan() if "cli" in kinds else []
    else:
        items = plan(args.rounds, args.haiku_model, args.sonnet_model, long_stream=not real,
                     kinds=kinds)
    results: list[ProbeResult] = []
    readyz = None
    interrupted = False
    try:
        with front_process(args.front, logs_dir, env) as shim:
            print(f"[repro] {args.front} {shim.url} (pid {shim.proc.pid})", flush=True)
            # the mitm's /readyz is on its admin port; clients keep their Anthropic URL there
            readyz = _readyz(f"{shim.admin_url if mitm else shim.url}/readyz")
            with progress_bar(len(items), "probes", enabled=not args.no_progress) as advance:
                for item in items:
                    results.append(_fire(item, shim.client_url, client_auth, args.cli_timeout,
                                         shim.via))
                    advance(f"{item.kind} {item.model}")
            shim.wait_for_records(len(items)) if items else None
    except KeyboardInterrupt:  # the `with` stopped the shim; the mocks stop below
        interrupted = True
        print(f"\n[repro] interrupted after {len(results)} of {len(items)} probe(s): shim and "
              f"mocks stopped; writing what ran", file=sys.stderr, flush=True)
        items = items[:len(results)]
    finally:
        if mocks:
            for m in mocks:
                m.stop()

    usage_path = logs_dir / "usage.jsonl"
    records, bad_lines = read_records([usage_path]) if usage_path.exists() else ([], 0)
    found = attach_records(results, records)
    _print_table(items, results, found)

    results_dir.mkdir(parents=True, exist_ok=True)
    metrics_path = results_dir / f"METRICS_{run_name}.json"
    metrics = summarize(to_frame(records, bad_lines))
    write_metrics(metrics, metrics_path)  # written first, so metrics_present checks a real file
    verdicts = run_gates(records, metrics_path)
    verdicts.append(rotated_before_run(records, run_started))
    verdicts.append(readyz_ok(readyz))
    verdicts.append(providers_resolve(providers_view(load_settings(env)), need_credentials=real))
    verdicts += _probe_checks(items, results, found, records)
    if interrupted:
        verdicts.append(GateResult("run_complete", False, f"interrupted (Ctrl-C) after "
                                   f"{len(results)} probe(s)"))
    elif not items:
        verdicts.append(GateResult("probes_ran", False, "no probe could run"))
    if mocks is not None:
        verdicts.append(_long_stream_check(items, results, mocks[0]))
        verdicts += _hygiene_checks(mocks, env.get("ZAI_HEADER_MODE", "x-api-key"))

    usage_copy = results_dir / f"{run_name}-usage.jsonl"
    if usage_path.exists():
        shutil.copyfile(usage_path, usage_copy)
    metrics["run"] = {
        "name": run_name, "started_at": run_started, "upstreams": "real" if real else "mock",
        "front": args.front,
        "versions": _versions(cli_binary), "toggles": {**{k: None for k in TOGGLES}, **toggles},
        "gates": [v._asdict() for v in verdicts], "skipped": skipped,
        "probes": [res.row() for res in results], "usage_copy": str(usage_copy),
    }
    write_metrics(metrics, metrics_path)
    summary_path = results_dir / (args.summary or f"{run_name}-SUMMARY.md")
    summary_path.write_text(render_summary(metrics, f"ccp {run_name}"))
    # last: every artifact this run wrote, scanned for every secret it knew
    secrets = [*load_settings(env).secrets(), *(test_keys().values() if mocks else [])]
    artifacts = [usage_path, usage_copy, metrics_path, summary_path,
                 *[p for sub in ("partials", "trajectory", "tee") for p in (logs_dir / sub).rglob("*")]]
    verdicts.append(no_secret_in_files(artifacts, secrets))
    append_entry(results_dir, run_name, toggles, verdicts, [metrics_path, summary_path, usage_copy])

    print()
    print(format_verdicts(verdicts))
    print(f"\n[repro] METRICS: {metrics_path}\n[repro] summary: {summary_path}\n"
          f"[repro] usage copy: {usage_copy}")
    failed = [v for v in verdicts if not v.ok]
    print(f"[repro] {'FAILED: ' + ', '.join(v.name for v in failed) if failed else 'all gates passed'}")
    return 130 if interrupted else 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ccp repro", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds of probes (default 3)")
    parser.add_argument("--quick", action="store_true",
                        help="1x haiku + 1x sonnet through the claude CLI only")
    parser.add_argument("--run", help="run name for the artifacts (default repro / repro_quick, "
                                      "mitm_repro / mitm_repro_quick with --front mitm)")
    parser.add_argument("--summary", metavar="FILE", help="the summary's file name in the results "
                        "folder (default <run>-SUMMARY.md; make repro-go: GO-REPRO-SUMMARY.md)")
    parser.add_argument("--front", choices=FRONTS, default="shim",
                        help="shim: clients use ANTHROPIC_BASE_URL=ccp serve (default); mitm: "
                             "clients keep api.anthropic.com and go through `ccp mitm` as "
                             "HTTPS_PROXY (TLS mock upstreams)")
    parser.add_argument("--kinds", help=f"comma-separated probe kinds (default {','.join(KINDS)})")
    parser.add_argument("--cli-timeout", type=float, default=60.0, help="seconds per CLI call")
    parser.add_argument("--logs", help="the run shim's logs folder (default: results/runs/<run>, "
                                       "emptied first; never the daily logs)")
    parser.add_argument("--results", help="results folder (default CCP_RESULTS_DIR or results)")
    parser.add_argument("--haiku-model", default=HAIKU_MODEL, help="haiku model id for the "
                        "curl/http/sdk probes (default %(default)s)")
    parser.add_argument("--sonnet-model", default=SONNET_MODEL, help="sonnet model id for the "
                        "curl/http/sdk probes (default %(default)s)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    try:
        return run(args)
    except ConfigError as exc:
        print(f"ConfigError: {exc}", file=sys.stderr)
        return 2
