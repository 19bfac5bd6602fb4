"""`ccp report`: usage logs (or, failing those, one METRICS file) → one self-contained HTML file.

Load → pure → write. `load_logs()` reads the usage files (for a logs folder only the current
`usage.jsonl` unless `--rotated`), `page_from_records()` computes everything the page shows from
those records alone — summaries, gates (harness.gates), charts (reports.svg), drill-downs
(reports.drilldown) — and `page_from_metrics()` does the same from a METRICS file when there are no
logs, saying so: one data source per page, named at the top with its files and time range. The run
context (reports.context) is the only other input. `render_report()` renders templates/
report.html.j2 (jinja2, `StrictUndefined`, autoescaped) and only `main()` writes. The page has
inline CSS and inline SVG only: no script, no stylesheet link, no remote image.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import NamedTuple

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from harness.gates import rotated_before_run, run_gates
from proxy.config.load import load_settings
from proxy.config.settings import Settings
from proxy.core.record import utc_timestamp
from reports import context, drilldown, svg
from reports.summarize import KNOWN_LANES, NONE_LABEL, fmt, pct, summarize
from reports.usage_io import read_records, rotated_copies, to_frame, usage_files

TEMPLATES_DIR = Path(__file__).parent / "templates"
REPORT_TEMPLATE = "report.html.j2"
DEFAULT_OUT = "report.html"
LOGS, METRICS = "logs", "metrics"
NEEDS_RECORDS = "not in a METRICS file (needs per-request records)"


class LogFile(NamedTuple):
    path: str
    records: int
    bad_lines: int
    first_ts: str | None
    last_ts: str | None


class Source(NamedTuple):
    """What one page was computed from: usage files (LOGS) or a single METRICS file."""
    kind: str
    files: tuple[LogFile, ...] = ()
    left_out: tuple[str, ...] = ()  # rotated copies in a logs folder that were not read
    metrics_path: str | None = None


def load_logs(paths: list[str], rotated: bool = False) -> tuple[list[dict], int, Source]:
    """Read usage files / logs folders; (records, bad lines, their Source). FileNotFoundError on a
    missing path."""
    records: list[dict] = []
    bad = 0
    files: list[LogFile] = []
    left_out: list[str] = []
    for path in paths:
        if not rotated:
            left_out += [str(p) for p in rotated_copies(path)]
        for f in usage_files(path, rotated):
            got, n_bad = read_records(f)
            times = sorted(t for t in (drilldown.parse_ts(r.get("ts")) for r in got) if t)
            files.append(LogFile(str(f), len(got), n_bad,
                                 times[0].strftime("%Y-%m-%dT%H:%M:%SZ") if times else None,
                                 times[-1].strftime("%Y-%m-%dT%H:%M:%SZ") if times else None))
            records += got
            bad += n_bad
    return records, bad, Source(LOGS, tuple(files), tuple(left_out))


def _lane_order(lanes) -> list[str]:
    names = sorted(set(lanes))
    fixed = [n for n in KNOWN_LANES if n in names]
    last = [n for n in names if n in svg.NONE_LANES]
    return fixed + [n for n in names if n not in fixed and n not in last] + last


def _lanes(metrics: dict) -> list[dict]:
    by_lane = metrics.get("by_lane", {})
    total = sum(by_lane.values())
    done = metrics.get("completions_by_lane", {})
    return [{"lane": k, "color": svg.lane_color(k), "n": by_lane[k],
             "share": by_lane[k] / total if total else None,
             "completions": done.get(k, done.get("unknown") if k == NONE_LABEL else 0)}
            for k in _lane_order(by_lane)]


def _timing_rows(section: dict) -> list[dict]:
    """lane/op rows in lane order (anthropic, zai, catalog lanes, none), as the box plots."""
    order = {lane: i for i, lane in enumerate(_lane_order(k.rsplit("/", 1)[0] for k in section))}
    rows = []
    for key, v in sorted(section.items(), key=lambda kv: (order[kv[0].rsplit("/", 1)[0]], kv[0])):
        lane = key.rsplit("/", 1)[0]
        rows.append({"key": key, "lane": lane, "color": svg.lane_color(lane), "n": v.get("n"),
                     "p50": v.get("p50"), "p95": v.get("p95")})
    return rows


def _sse_rows(metrics: dict) -> list[dict]:
    return [{"lane": lane, "color": svg.lane_color(lane), **{k: s.get(k) for k in (
        "streams", "complete", "incomplete", "events", "bytes", "duration_ms_p50",
        "duration_ms_p95")}} for lane, s in sorted(metrics.get("sse", {}).items())]


def _common(metrics: dict) -> dict:
    """The tables and the charts both kinds of page draw from summary numbers."""
    lanes = _lanes(metrics)
    sse = _sse_rows(metrics)
    return {
        "lanes": lanes, "zai_share": metrics.get("decisions", {}).get("zai_share"),
        "decisions": sorted(metrics.get("decisions", {}).get("counts", {}).items()),
        "latency": _timing_rows(metrics.get("latency_ms", {})),
        "ttfb": _timing_rows(metrics.get("ttfb_ms", {})),
        "sse": sse,
        "lane_chart": Markup(svg.hbars([(r["lane"], float(r["n"]), r["color"]) for r in lanes],
                                       "requests per lane")),
        "sse_chart": Markup(svg.hbars([(r["lane"], float(r["bytes"] or 0), r["color"]) for r in sse],
                                      "SSE bytes per lane")),
    }


def _boxes(records: list[dict], column: str) -> list[tuple[str, str, list[float]]]:
    groups: dict[tuple[str, str], list[float]] = {}
    for r in records:
        try:
            value = float(r.get(column))
        except (TypeError, ValueError):
            continue
        if math.isnan(value):
            continue
        key = (drilldown.lane_of(r), str(r.get("op") or NONE_LABEL))
        groups.setdefault(key, []).append(value)
    order = {lane: i for i, lane in enumerate(_lane_order(lane for lane, _ in groups))}
    return [(f"{lane}/{op}", svg.lane_color(lane), values)
            for (lane, op), values in sorted(groups.items(), key=lambda kv: (order[kv[0][0]], kv[0][1]))]


def _series(counts: dict[str, list[int]]) -> list[tuple[str, str, list[int]]]:
    return [(lane, svg.lane_color(lane), counts[lane]) for lane in _lane_order(counts)]


def _error_rows(records: list[dict]) -> list[tuple[str, str, int]]:
    counts: dict[tuple[str, str], int] = {}
    for r in records:
        if drilldown.is_error(r):
            kind = str(r.get("err_type") or f"HTTP {r.get('status')}")
            key = (kind, drilldown.lane_of(r))
            counts[key] = counts.get(key, 0) + 1
    return [(kind, lane, n) for (kind, lane), n in sorted(counts.items())]


def page_from_records(records: list[dict], bad_lines: int, source: Source, ctx: dict,
                      run: dict | None = None, generated_at: str | None = None) -> dict:
    """Everything the page shows, from these records alone (plus the run context). Pure.

    Gates: harness.gates.run_gates over the records (with metrics_present when the source names
    a METRICS file), and rotated_before_run when a run block gives the run's start."""
    metrics = summarize(to_frame(records, bad_lines), generated_at=generated_at)
    results = run_gates(records, source.metrics_path)
    if isinstance(run, dict) and run.get("started_at"):
        results.append(rotated_before_run(records, str(run["started_at"])))
    buckets = drilldown.time_buckets(records)
    caption = (f"{len(buckets.labels)} bucket(s) of {drilldown.width_text(buckets.width_s)}, UTC"
               if buckets.labels else "")
    errors = drilldown.per_bucket(records, buckets, drilldown.is_error)
    return {
        "generated_at": metrics["generated_at"],
        "source": {"kind": LOGS, "files": source.files, "left_out": source.left_out,
                   "metrics_path": source.metrics_path, "records": len(records),
                   "bad_lines": bad_lines, "start": buckets.start, "end": buckets.end},
        "ctx": ctx,
        "gates": {"origin": f"computed by ccp report from the {len(records)} records read",
                  "rows": [r._asdict() for r in results]},
        **_common(metrics),
        "errors": _error_rows(records),
        "errors_total": sum(1 for r in records if drilldown.is_error(r)),
        "bucket_caption": caption,
        "charts": {
            "latency": Markup(svg.boxplot(_boxes(records, "latency_ms"), "latency per lane/op")),
            "ttfb": Markup(svg.boxplot(_boxes(records, "ttfb_ms"), "time to first byte per lane/op")),
            "errors": Markup(svg.stacked_bars(buckets.labels, _series(errors), "errors per time bucket",
                                              "errors", caption)),
            "requests": Markup(svg.stacked_bars(buckets.labels, _series(drilldown.per_bucket(
                records, buckets)), "requests per time bucket", "requests", caption)),
        },
        "slowest": drilldown.slowest(records),
        "failures": drilldown.failures(records),
    }


def page_from_metrics(metrics: dict, source: Source, ctx: dict, generated_at: str | None = None) -> dict:
    """The page from one METRICS file when there are no records; it says what it cannot show. Pure."""
    run = metrics.get("run") if isinstance(metrics.get("run"), dict) else {}
    gates = run.get("gates")
    by_err = {k: v for k, v in metrics.get("by_err_type", {}).items() if k != NONE_LABEL}
    return {
        "generated_at": generated_at or utc_timestamp(),
        "source": {"kind": METRICS, "files": (), "left_out": (), "metrics_path": source.metrics_path,
                   "records": int(metrics.get("requests", 0)),
                   "bad_lines": int(metrics.get("bad_lines", 0)), "start": None, "end": None},
        "ctx": ctx,
        "gates": {"origin": "recorded in the METRICS run block (not recomputed: no records were read)",
                  "rows": [{"name": str(g.get("name")), "ok": bool(g.get("ok")),
                            "detail": str(g.get("detail", ""))} for g in gates]
                  if isinstance(gates, list) else None},
        **_common(metrics),
        "errors": [(k, "–", n) for k, n in sorted(by_err.items())],
        "errors_total": sum(by_err.values()),
        "bucket_caption": "",
        "charts": {key: Markup(svg.empty(what, NEEDS_RECORDS)) for key, what in (
            ("latency", "latency distribution"), ("ttfb", "TTFB distribution"),
            ("errors", "errors per time bucket"), ("requests", "requests per time bucket"))},
        "slowest": None,
        "failures": None,
    }


def render_report(page: dict, title: str) -> str:
    """The report as one self-contained HTML string (jinja2, StrictUndefined, autoescape). Pure."""
    env = Environment(loader=FileSystemLoader(TEMPLATES_DIR), undefined=StrictUndefined,
                      autoescape=True, keep_trailing_newline=True)
    env.filters["fmt"] = fmt
    env.filters["pct"] = pct
    env.filters["swatch"] = lambda color: Markup(svg.swatch(color))
    env.filters["lane"] = lambda lane: Markup(svg.swatch(svg.lane_color(lane))) + " " + str(lane)
    return env.get_template(REPORT_TEMPLATE).render(title=title, c=page)


def build_report(logs: list[str], metrics_path: str | None, settings: Settings, title: str,
                 rotated: bool = False, logs_optional: bool = False) -> str:
    """Load, compute and render one report (the edge `ccp report` and `ccp bundle` share).

    Records from `logs` make the page; with `logs_optional` and no such path, the METRICS file
    makes it instead (FileNotFoundError when neither exists; ValueError for unreadable METRICS)."""
    metrics = json.loads(Path(metrics_path).read_text(encoding="utf-8")) if metrics_path else None
    if metrics is not None and not isinstance(metrics, dict):
        raise ValueError("not a JSON object")
    run = metrics.get("run") if metrics else None
    versions = None if isinstance(run, dict) and isinstance(run.get("versions"), dict) \
        else context.current_versions()
    ctx = context.run_context(run, settings, versions)
    try:
        records, bad, source = load_logs(logs, rotated)
    except FileNotFoundError:
        if not (logs_optional and metrics is not None):
            raise
        return render_report(page_from_metrics(metrics, Source(METRICS, metrics_path=metrics_path),
                                               ctx), title)
    source = source._replace(metrics_path=metrics_path)
    return render_report(page_from_records(records, bad, source, ctx, run), title)


def main(argv: list[str] | None, default_logs_dir: str, default_results_dir: str) -> int:
    """`ccp report [LOG ...] [--metrics F] [--rotated] [--out results/report.html] [--title T]`."""
    parser = argparse.ArgumentParser(prog="ccp report",
                                     description="Render a self-contained HTML report.")
    parser.add_argument("logs", nargs="*", metavar="LOG",
                        help=f"usage files or logs folders (default: {default_logs_dir})")
    parser.add_argument("--metrics", help="a METRICS JSON file: its run block gives the run context "
                                          "(and the whole page when there are no logs)")
    parser.add_argument("--rotated", action="store_true",
                        help="also read a folder's rotated copies (usage.jsonl.1 … .5)")
    default_out = str(Path(default_results_dir) / DEFAULT_OUT)
    parser.add_argument("--out", default=default_out, help=f"HTML file (default: {default_out})")
    parser.add_argument("--title", default="ccp report", help="the page's title (default %(default)s)")
    args = parser.parse_args(argv)
    settings = load_settings()
    try:
        html = build_report(args.logs or [default_logs_dir], args.metrics, settings,
                            args.title, rotated=args.rotated, logs_optional=not args.logs)
    except FileNotFoundError as exc:
        print(f"UsageError: {exc}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:
        print(f"UsageError: --metrics {args.metrics}: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html, encoding="utf-8")
    print(f"wrote {out}")
    return 0
