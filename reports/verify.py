"""`ccp verify-routing` and `ccp gates`: read usage logs, print routing shares and gate verdicts.

Thin edges over `reports.usage_io` (load), `reports.summarize` and `harness.gates` (pure).
Exit codes: 0 all gates pass, 1 a gate failed, 2 a usage error (e.g. a missing log path).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.gates import (
    all_ok,
    format_verdicts,
    no_secret_in_files,
    providers_resolve,
    readyz_ok,
    rotated_before_run,
    run_gates,
)
from proxy.config.load import load_settings
from reports.summarize import DEFAULT_NAME, metrics_file, summarize
from reports.usage_io import read_records, to_frame


def _load(paths: list[str]) -> tuple[list[dict], int] | None:
    try:
        return read_records(paths)
    except FileNotFoundError as exc:
        print(f"UsageError: {exc}", file=sys.stderr)
        return None


def routing_lines(metrics: dict) -> list[str]:
    """The human lines for routing shares and completions, from METRICS."""
    d = metrics["decisions"]
    share = "n/a" if d["zai_share"] is None else f"{d['zai_share'] * 100:.1f}%"
    completions = ", ".join(f"{lane} {n}" for lane, n in metrics["completions_by_lane"].items())
    lines = [f"records: {metrics['requests']} ({metrics['bad_lines']} bad lines)",
             f"zai share: {d['routed_to_zai']}/{d['decided']} = {share}",
             f"completions by lane: {completions}"]
    return lines


def main(argv: list[str] | None, default_logs_dir: str) -> int:
    """`ccp verify-routing [LOG ...]`."""
    parser = argparse.ArgumentParser(
        prog="ccp verify-routing",
        description="Print the share of requests routed to zai, completions by lane "
                    "and gate verdicts.")
    parser.add_argument("logs", nargs="*", metavar="LOG",
                        help=f"usage files or logs folders (default: {default_logs_dir})")
    args = parser.parse_args(argv)
    loaded = _load(args.logs or [default_logs_dir])
    if loaded is None:
        return 2
    records, bad = loaded
    metrics = summarize(to_frame(records, bad))
    print("\n".join(routing_lines(metrics)))
    results = run_gates(records)
    print(format_verdicts(results))
    return 0 if all_ok(results) else 1


def gates_main(argv: list[str] | None, default_logs_dir: str, default_results_dir: str) -> int:
    """`ccp gates [LOG ...] [--metrics PATH | --no-metrics]`."""
    default_metrics = Path(default_results_dir) / metrics_file(DEFAULT_NAME)
    parser = argparse.ArgumentParser(prog="ccp gates", description="Print gate verdicts.")
    parser.add_argument("logs", nargs="*", metavar="LOG",
                        help=f"usage files or logs folders (default: {default_logs_dir})")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--metrics", default=str(default_metrics),
                       help="METRICS file that must be present (default: %(default)s)")
    group.add_argument("--no-metrics", action="store_true", help="skip the metrics_present gate")
    parser.add_argument("--readyz", metavar="URL",
                        help="a running shim (e.g. http://127.0.0.1:18080): check its /readyz")
    parser.add_argument("--providers", action="store_true",
                        help="check that `ccp providers` resolves the anthropic and zai lanes")
    parser.add_argument("--secrets", action="store_true",
                        help="scan the logs and results folders for every configured secret value")
    parser.add_argument("--since", metavar="TS",
                        help="run start (ISO-8601 UTC): every record must be newer (log rotated)")
    args = parser.parse_args(argv)
    loaded = _load(args.logs or [default_logs_dir])
    if loaded is None:
        return 2
    records, bad = loaded
    results = run_gates(records, None if args.no_metrics else args.metrics)
    if args.since:
        results.append(rotated_before_run(records, args.since))
    if args.providers:
        from proxy.cli.providers import providers_view
        results.append(providers_resolve(providers_view(load_settings())))
    if args.readyz:
        results.append(readyz_ok(_fetch_readyz(args.readyz)))
    if args.secrets:
        settings = load_settings()
        files = [p for folder in (default_logs_dir, default_results_dir) if Path(folder).is_dir()
                 for p in Path(folder).rglob("*") if p.is_file()]
        results.append(no_secret_in_files(files, settings.secrets()))
    print(f"records: {len(records)} ({bad} bad lines)")
    print(format_verdicts(results))
    return 0 if all_ok(results) else 1


def _fetch_readyz(url: str) -> dict | None:
    import httpx
    try:
        return httpx.get(url.rstrip("/") + "/readyz", timeout=10, trust_env=False).json()
    except (httpx.HTTPError, ValueError):
        return None
