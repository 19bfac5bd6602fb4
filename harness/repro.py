"""`ccp repro`: the main job — mock upstreams (or real ones), the shim, probes, METRICS, gates.

With no keys it runs entirely on loopback: two mock upstreams (anthropic, and zai under its
`/api/anthropic` prefix), the real `ccp serve` process, haiku and sonnet probes through raw HTTP and the
official SDK (stream and non-stream), one long SSE stream, then `results/METRICS_repro.json`, a Markdown
summary and the gate verdicts. Exit 1 when a gate fails. With `ALLOW_REAL_API=1` and real keys in the
environment the shim talks to the real upstreams instead.
"""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from harness.gates import GateResult, format_verdicts, run_gates
from harness.hygiene import check_anthropic_calls, check_zai_calls
from harness.keys import lane_env, test_keys
from harness.mock_upstream import MockUpstream
from harness.probes import ProbeResult, probe
from harness.shim import ShimProcess
from proxy.settings import ConfigError, Settings
from proxy.usage import rotate_usage
from reports.summarize import render_summary, summarize, write_metrics
from reports.usage_io import read_usage

HAIKU_MODEL = "claude-haiku-4-5-20251001"
SONNET_MODEL = "claude-sonnet-4-5-20250929"
LONG_STREAM_DELTAS = 2000


@dataclass
class Planned:
    kind: str
    model: str
    stream: bool
    expect_lane: str
    token: str
    deltas: int | None = None


def plan(rounds: int, haiku: str, sonnet: str, long_stream: bool) -> list[Planned]:
    """3× haiku + 3× sonnet per op, alternating http/sdk, then one long SSE stream."""
    items: list[Planned] = []
    for r in range(rounds):
        kind = "http" if r % 2 == 0 else "sdk"
        for model, lane in ((haiku, "zai"), (sonnet, "anthropic")):
            for stream in (False, True):
                family = "HAIKU" if lane == "zai" else "SONNET"
                token = f"CCP_REPRO_{family}_{'S' if stream else 'N'}{r + 1}"
                items.append(Planned(kind, model, stream, lane, token))
    if long_stream:
        items.append(Planned("http", sonnet, True, "anthropic", "CCP_REPRO_LONG", LONG_STREAM_DELTAS))
    return items


def _fire(item: Planned, base_url: str, client_auth: dict) -> ProbeResult:
    prompt = f"Reply with exactly: {item.token} and nothing else."
    kw = dict(client_auth, stream=item.stream)
    if item.deltas:
        kw["extra_headers"] = {"x-mock-deltas": str(item.deltas)}
    return probe(item.kind, base_url, item.model, prompt, **kw)


def _probe_checks(items: list[Planned], results: list[ProbeResult], records: list[dict],
                  mocks: tuple[MockUpstream, MockUpstream] | None) -> list[GateResult]:
    by_rid: dict[str, list[dict]] = {}
    for rec in records:
        by_rid.setdefault(rec.get("rid"), []).append(rec)
    problems: list[str] = []
    lane_problems: list[str] = []
    for item, res in zip(items, results):
        label = f"{item.kind}/{item.model}/{'stream' if item.stream else 'nonstream'}"
        if not res.ok:
            problems.append(f"{label}: status {res.status} {res.error or ''}".strip())
        elif item.deltas is None and res.text.strip() != item.token:
            problems.append(f"{label}: answered {res.text[:40]!r}, expected {item.token!r}")
        recs = by_rid.get(res.rid, [])
        if len(recs) != 1:
            lane_problems.append(f"{label}: {len(recs)} record(s) for rid {res.rid}")
        elif recs[0].get("lane") != item.expect_lane:
            lane_problems.append(f"{label}: lane {recs[0].get('lane')}, expected {item.expect_lane}")
    checks = [
        GateResult("probes_answered", not problems,
                   f"{len(results)} probe(s) answered as asked" if not problems else "; ".join(problems[:3])),
        GateResult("probes_routed", not lane_problems,
                   "every probe has one record on the expected lane" if not lane_problems
                   else "; ".join(lane_problems[:3])),
    ]
    if mocks is not None:
        checks.append(_long_stream_check(items, results, mocks[0]))
    return checks


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


def _hygiene_checks(mocks: tuple[MockUpstream, MockUpstream], settings_env: dict) -> list[GateResult]:
    keys = test_keys()
    anth, zai = mocks
    mode = settings_env.get("ZAI_HEADER_MODE", "x-api-key")
    zai_res = check_zai_calls([c.headers for c in zai.calls], keys["ZAI_API_KEY"],
                              [keys["ANTHROPIC_AUTH_TOKEN"], keys["CLIENT_API_KEY"]], mode)
    anth_res = check_anthropic_calls([c.headers for c in anth.calls], keys["ZAI_API_KEY"])
    return [zai_res, anth_res]


def _print_table(items: list[Planned], results: list[ProbeResult], records: list[dict]) -> None:
    by_rid = {r.get("rid"): r for r in records}
    print(f"{'probe':<6}{'model':<28}{'op':<10}{'status':<7}{'lane':<10}{'decision':<15}"
          f"{'ttfb_ms':>9}{'latency_ms':>11}")
    for item, res in zip(items, results):
        rec = by_rid.get(res.rid, {})
        print(f"{item.kind:<6}{item.model[:27]:<28}{'stream' if item.stream else 'nonstream':<10}"
              f"{str(res.status):<7}{str(rec.get('lane')):<10}{str(rec.get('decision')):<15}"
              f"{_num(rec.get('ttfb_ms')):>9}{_num(rec.get('latency_ms')):>11}")


def _num(value) -> str:
    return f"{value:.1f}" if isinstance(value, (int, float)) else "-"


def run(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    logs_dir = Path(args.logs or settings.logs_dir).resolve()
    results_dir = Path(args.results or settings.results_dir).resolve()
    real = settings.allow_real_api and bool(settings.zai_api_key) and bool(
        settings.anthropic_auth_token or settings.anthropic_api_key)
    if settings.allow_real_api and not real:
        print("[repro] ALLOW_REAL_API=1 but ZAI_API_KEY and an Anthropic credential are not both "
              "set: using the mock upstreams", file=sys.stderr)
    rotated = rotate_usage(logs_dir)
    print(f"[repro] logs={logs_dir} (previous usage rotated to {rotated.name})" if rotated
          else f"[repro] logs={logs_dir}")

    mocks: tuple[MockUpstream, MockUpstream] | None = None
    passthrough = {k: os.environ[k] for k in ("FORCE_HAIKU_TO_ZAI", "OFFLOAD_PAUSED",
                                              "ZAI_HEADER_MODE") if k in os.environ}
    if real:
        env = {k: v for k, v in os.environ.items()}
        client_auth: dict = {}  # the shim adds the operator's Anthropic credential from its env
        print("[repro] upstreams: REAL (ALLOW_REAL_API=1)")
    else:
        mocks = (MockUpstream("anthropic").start(), MockUpstream("zai").start())
        env = {**lane_env(mocks[0].base_url, mocks[1].zai_base_url), **passthrough}
        client_auth = {"api_key": test_keys()["CLIENT_API_KEY"]}
        print(f"[repro] upstreams: mock anthropic={mocks[0].base_url} zai={mocks[1].zai_base_url}")

    items = plan(args.rounds, args.haiku_model, args.sonnet_model, long_stream=not real)
    results: list[ProbeResult] = []
    try:
        with ShimProcess(logs_dir, env) as shim:
            print(f"[repro] shim {shim.url} (pid {shim.proc.pid})")
            for item in items:
                results.append(_fire(item, shim.url, client_auth))
            records = shim.wait_for_records(len(items)) if items else []
    finally:
        if mocks:
            for m in mocks:
                m.stop()

    _print_table(items, results, records)
    df = read_usage([logs_dir / "usage.jsonl"])
    metrics = summarize(df)
    results_dir.mkdir(parents=True, exist_ok=True)
    metrics_path = results_dir / "METRICS_repro.json"
    write_metrics(metrics, metrics_path)
    summary_path = results_dir / "repro-SUMMARY.md"
    summary_path.write_text(render_summary(metrics, "ccp repro"))

    verdicts = run_gates(records, metrics_path)
    verdicts += _probe_checks(items, results, records, mocks)
    if mocks is not None:
        verdicts += _hygiene_checks(mocks, env)
    print()
    print(format_verdicts(verdicts))
    print(f"\n[repro] METRICS: {metrics_path}\n[repro] summary: {summary_path}")
    failed = [v for v in verdicts if not v.ok]
    print(f"[repro] {'FAILED: ' + ', '.join(v.name for v in failed) if failed else 'all gates passed'}")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ccp repro", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="probes per model and op (default 3)")
    parser.add_argument("--logs", help="logs folder (default CCP_LOGS_DIR or logs)")
    parser.add_argument("--results", help="results folder (default CCP_RESULTS_DIR or results)")
    parser.add_argument("--haiku-model", default=HAIKU_MODEL)
    parser.add_argument("--sonnet-model", default=SONNET_MODEL)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except ConfigError as exc:
        print(f"ConfigError: {exc}", file=sys.stderr)
        return 2
