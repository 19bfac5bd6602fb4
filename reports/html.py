"""`ccp report`: METRICS + usage DataFrame → one self-contained HTML file.

Load → pure → write: `read_usage()` loads, `report_context(metrics, df)` computes everything the
page shows (SVG charts from reports.svg, tables as plain lists), `render_report()` renders
templates/report.html.j2 with jinja2 (`StrictUndefined`, autoescaped), and only `main()` writes.
The page has inline CSS and inline SVG only: no script, no stylesheet link, no remote image.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from reports import svg
from reports.summarize import NONE_LABEL, fmt, pct, summarize
from reports.usage_io import read_usage, to_frame

TEMPLATES_DIR = Path(__file__).parent / "templates"
REPORT_TEMPLATE = "report.html.j2"
DEFAULT_OUT = "report.html"
TIME_BUCKETS = 24
# METRICS sections shown as key/value state tables when present (licence, quotas).
STATE_KEYS = ("licence", "license", "quotas", "quota")


def _label(value) -> str:
    if value is None or (not isinstance(value, (list, dict)) and pd.isna(value)):
        return NONE_LABEL
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _groups(df: pd.DataFrame, column: str) -> dict[str, list[float]]:
    """`lane/op` → the non-null float values of `column`, keys sorted."""
    if df.empty:
        return {}
    values = pd.to_numeric(df[column].astype(object), errors="coerce")
    keys = df["lane"].map(_label) + "/" + df["op"].map(_label)
    out: dict[str, list[float]] = {}
    for key, group in values.groupby(keys, sort=True):
        got = [float(v) for v in group.dropna()]
        if got:
            out[str(key)] = got
    return out


def over_time(df: pd.DataFrame, column: str, buckets: int = TIME_BUCKETS,
              skip_none: bool = False) -> tuple[list[str], dict[str, list[int]]]:
    """Counts of `column`'s values per equal time bucket: (bucket labels, value → counts)."""
    if df.empty:
        return [], {}
    ts = pd.to_datetime(df["ts"].astype(object), utc=True, errors="coerce", format="ISO8601")
    labels = df[column].map(_label)
    keep = ts.notna() & (~labels.eq(NONE_LABEL) if skip_none else True)
    ts, labels = ts[keep], labels[keep]
    if ts.empty:
        return [], {}
    start, end = ts.min(), ts.max()
    width = max((end - start) / buckets, pd.Timedelta(seconds=1))
    n = min(buckets, int((end - start) / width) + 1)
    index = ((ts - start) / width).astype(int).clip(upper=n - 1)
    names = [(start + width * i).strftime("%m-%d %H:%M:%S") for i in range(n)]
    series = {str(v): [0] * n for v in sorted(labels.unique())}
    for i, v in zip(index, labels):
        series[str(v)][int(i)] += 1
    return names, series


def _gates(metrics: dict) -> list[dict] | None:
    run = metrics.get("run")
    if not isinstance(run, dict) or "gates" not in run:
        return None
    return [{"name": str(g.get("name")), "ok": bool(g.get("ok")), "detail": str(g.get("detail", ""))}
            for g in run["gates"]]


def _flatten(value, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(value, dict):
        rows: list[tuple[str, str]] = []
        for k, v in value.items():
            rows += _flatten(v, f"{prefix}.{k}" if prefix else str(k))
        return rows
    text = json.dumps(value) if isinstance(value, list) else ("–" if value is None else str(value))
    return [(prefix or "value", text)]


def _timing_rows(section: dict) -> list[dict]:
    return [{"key": k, "n": v.get("n"), "p50": v.get("p50"), "p95": v.get("p95")}
            for k, v in sorted(section.items())]


def report_context(metrics: dict, df: pd.DataFrame) -> dict:
    """Everything the template shows, computed from METRICS and the usage DataFrame. Pure."""
    by_lane = metrics.get("by_lane", {})
    total = sum(by_lane.values()) or 0
    lanes = [{"lane": k, "n": v, "share": (v / total if total else None)} for k, v in by_lane.items()]
    decisions = metrics.get("decisions", {})
    sse = metrics.get("sse", {})
    sse_rows = [{"lane": lane, **{k: s.get(k) for k in (
        "streams", "complete", "incomplete", "events", "bytes", "duration_ms_p50",
        "duration_ms_p95")}} for lane, s in sorted(sse.items())]
    err_buckets, err_series = over_time(df, "err_type", skip_none=True)
    dec_buckets, dec_series = over_time(df, "decision")
    sse_bytes = [(r["lane"], float(r["bytes"] or 0)) for r in sse_rows]
    run = metrics.get("run") if isinstance(metrics.get("run"), dict) else {}
    return {
        "generated_at": str(metrics.get("generated_at", "")),
        "requests": int(metrics.get("requests", len(df))),
        "bad_lines": int(metrics.get("bad_lines", 0)),
        "run": [(k, str(run[k])) for k in ("name", "started_at", "upstreams") if k in run],
        "gates": _gates(metrics),
        "lanes": lanes,
        "zai_share": decisions.get("zai_share"),
        "decision_counts": sorted(decisions.get("counts", {}).items()),
        "completions": sorted(metrics.get("completions_by_lane", {}).items()),
        "errors": sorted(metrics.get("by_err_type", {}).items()),
        "latency": _timing_rows(metrics.get("latency_ms", {})),
        "ttfb": _timing_rows(metrics.get("ttfb_ms", {})),
        "sse": sse_rows,
        "state": [(k, _flatten(metrics[k])) for k in STATE_KEYS if metrics.get(k) is not None],
        "charts": {
            "lanes": Markup(svg.hbars([(r["lane"], float(r["n"])) for r in lanes], "requests per lane")),
            "latency": Markup(svg.boxplot(_groups(df, "latency_ms"), "latency per lane/op")),
            "ttfb": Markup(svg.boxplot(_groups(df, "ttfb_ms"), "time to first byte per lane/op")),
            "sse_bytes": Markup(svg.hbars(sse_bytes, "SSE bytes per lane")),
            "errors": Markup(svg.stacked_bars(err_buckets, err_series, "errors by type over time")),
            "decisions": Markup(svg.stacked_bars(dec_buckets, dec_series, "decisions over time")),
        },
    }


def render_report(metrics: dict, df: pd.DataFrame, title: str) -> str:
    """The report as one self-contained HTML string (jinja2, StrictUndefined, autoescape). Pure."""
    env = Environment(loader=FileSystemLoader(TEMPLATES_DIR), undefined=StrictUndefined,
                      autoescape=True, keep_trailing_newline=True)
    env.filters["fmt"] = fmt
    env.filters["pct"] = pct
    return env.get_template(REPORT_TEMPLATE).render(title=title, c=report_context(metrics, df))


def main(argv: list[str] | None, default_logs_dir: str, default_results_dir: str) -> int:
    """`ccp report [LOG ...] [--metrics F] [--out results/report.html] [--title T]`."""
    parser = argparse.ArgumentParser(prog="ccp report",
                                     description="Render a self-contained HTML report.")
    parser.add_argument("logs", nargs="*", metavar="LOG",
                        help=f"usage files or logs folders (default: {default_logs_dir})")
    parser.add_argument("--metrics", help="a METRICS JSON file (default: summarize the logs)")
    default_out = str(Path(default_results_dir) / DEFAULT_OUT)
    parser.add_argument("--out", default=default_out, help=f"HTML file (default: {default_out})")
    parser.add_argument("--title", default="ccp report")
    args = parser.parse_args(argv)
    try:
        df = read_usage(args.logs or [default_logs_dir])
    except FileNotFoundError as exc:
        if args.logs or not args.metrics:
            print(f"UsageError: {exc}", file=sys.stderr)
            return 2
        df = to_frame([])  # METRICS alone: the charts drawn from records say "no data"
    try:
        metrics = json.loads(Path(args.metrics).read_text()) if args.metrics else summarize(df)
    except (OSError, ValueError) as exc:
        print(f"UsageError: --metrics {args.metrics}: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_report(metrics, df, args.title), encoding="utf-8")
    print(f"wrote {out}")
    return 0
