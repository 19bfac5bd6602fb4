"""`ccp summarize`: usage records → METRICS JSON and a Markdown summary.

Load → pure → write: `read_usage()` (reports.usage_io) loads, `summarize(df)` computes the
METRICS dict with pandas and nothing else, `render_summary()` turns it into Markdown with
jinja2, and only `main()` writes files. METRICS holds plain Python values (ints, floats, str,
None), never numpy scalars or NaN, so it round-trips through JSON unchanged.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import pandas as pd
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from proxy.core.record import utc_timestamp
from reports.usage_io import read_usage

TEMPLATES_DIR = Path(__file__).parent / "templates"
SUMMARY_TEMPLATE = "summary.md.j2"
DEFAULT_NAME = ""  # no --name: results/METRICS.json and SUMMARY.md, the operators' own names
NONE_LABEL = "none"  # how a null value is keyed in the by_* counts
KNOWN_LANES = ("anthropic", "zai")
TOKEN_KEYS = ("in_tokens", "out_tokens", "cache_read_tokens", "cache_creation_tokens")


def _plain(value):
    """A pandas/numpy scalar as a plain Python value; NaN/NA become None."""
    if value is None:
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if value.is_integer() and abs(value) < 2**53:
            return value
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return value


def _label(value) -> str:
    """A key for a count table: null → "none", 200.0 → "200"."""
    value = _plain(value)
    if value is None:
        return NONE_LABEL
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def _labels(series: pd.Series) -> pd.Series:
    return series.astype(object).map(_label)


def _counts(series: pd.Series) -> dict[str, int]:
    counts = _labels(series).value_counts()
    return {str(k): int(v) for k, v in sorted(counts.items())}


def _numbers(series: pd.Series) -> pd.Series:
    return pd.to_numeric(series.astype(object), errors="coerce").astype("float64")


def _int_sum(series: pd.Series) -> int:
    return int(_numbers(series).fillna(0).sum())


def _round(value: float | None, digits: int = 3) -> float | None:
    value = _plain(value)
    return None if value is None else round(float(value), digits)


def _percentiles(series: pd.Series) -> dict:
    """n, p50, p95 of the non-null values (linear interpolation, as numpy's default)."""
    values = _numbers(series).dropna()
    if values.empty:
        return {"n": 0, "p50": None, "p95": None}
    return {"n": int(values.size), "p50": _round(values.quantile(0.5)),
            "p95": _round(values.quantile(0.95))}


def _routed_to_zai(df: pd.DataFrame) -> pd.Series:
    lanes = df["lane"].astype(object)
    decided = df["decision"].notna()
    return decided & (lanes.eq("zai") | (lanes.isna() & df["decision"].astype(object).eq("to_zai")))


def _decisions(df: pd.DataFrame) -> dict:
    total = len(df)
    counts = _counts(df["decision"])
    shares = {k: round(v / total, 6) for k, v in counts.items()} if total else {}
    decided = int(df["decision"].notna().sum())
    zai = int(_routed_to_zai(df).sum())
    return {"counts": counts, "shares": shares, "decided": decided, "routed_to_zai": zai,
            "zai_share": round(zai / decided, 6) if decided else None}


def _completions(df: pd.DataFrame) -> dict[str, int]:
    status = _numbers(df["status"])
    ok = df[(status >= 200) & (status < 300)]
    lanes = ok["lane"].astype(object).map(lambda v: "unknown" if _plain(v) is None else str(v))
    result = dict.fromkeys((*KNOWN_LANES, "unknown"), 0)
    for lane, n in lanes.value_counts().items():
        result[str(lane)] = result.get(str(lane), 0) + int(n)
    return result


def _tokens(df: pd.DataFrame) -> dict:
    totals = {key: _int_sum(df[key]) for key in TOKEN_KEYS}
    by_lane = {str(lane): {key: _int_sum(group[key]) for key in TOKEN_KEYS}
               for lane, group in df.groupby(_labels(df["lane"]), sort=True)}
    return {**totals, "by_lane": by_lane}


def _timings(df: pd.DataFrame, column: str) -> dict:
    keys = _labels(df["lane"]) + "/" + _labels(df["op"])
    return {str(key): _percentiles(group[column])
            for key, group in df.groupby(keys, sort=True)}


def _sse(df: pd.DataFrame) -> dict:
    streams = df[df["op"].astype(object).eq("stream")]
    result = {}
    for lane, group in streams.groupby(_labels(streams["lane"]), sort=True):
        complete = int(group["sse_complete"].astype(object).eq(True).sum())
        durations = _percentiles(group["sse_duration_ms"])
        result[str(lane)] = {
            "streams": int(len(group)), "complete": complete,
            "incomplete": int(len(group)) - complete,
            "events": _int_sum(group["sse_events"]), "bytes": _int_sum(group["sse_bytes"]),
            "duration_ms_p50": durations["p50"], "duration_ms_p95": durations["p95"],
        }
    return result


def summarize(df: pd.DataFrame, generated_at: str | None = None) -> dict:
    """The METRICS dict for a usage DataFrame (see reports.usage_io.read_usage). Pure."""
    return {
        "generated_at": generated_at or utc_timestamp(),
        "requests": int(len(df)),
        "bad_lines": int(df.attrs.get("bad_lines", 0)),
        "by_lane": _counts(df["lane"]),
        "by_op": _counts(df["op"]),
        "by_status": _counts(df["status"]),
        "by_err_type": _counts(df["err_type"]),
        "tokens": _tokens(df),
        "latency_ms": _timings(df, "latency_ms"),
        "ttfb_ms": _timings(df, "ttfb_ms"),
        "decisions": _decisions(df),
        "completions_by_lane": _completions(df),
        "sse": _sse(df),
    }


def write_metrics(metrics: dict, path: str | Path) -> Path:
    """Write METRICS as indented JSON (creating the folder); return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(metrics, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return path


def fmt(value, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def pct(value) -> str:
    return "–" if value is None else f"{value * 100:.1f}%"


def render_summary(metrics: dict, title: str) -> str:
    """Markdown summary of METRICS (jinja2 with StrictUndefined: a missing key is an error)."""
    env = Environment(loader=FileSystemLoader(TEMPLATES_DIR), undefined=StrictUndefined,
                      keep_trailing_newline=True, autoescape=False)
    env.filters["fmt"] = fmt
    env.filters["pct"] = pct
    return env.get_template(SUMMARY_TEMPLATE).render(m=metrics, title=title)


def metrics_file(name: str) -> str:
    """METRICS_<name>.json, or METRICS.json without a name."""
    return f"METRICS_{name}.json" if name else "METRICS.json"


def _output_paths(out: str, name: str) -> tuple[Path, Path]:
    out_path = Path(out)
    summary = f"{name}-SUMMARY.md" if name else "SUMMARY.md"
    if out_path.suffix == ".json":  # --out names the METRICS file itself
        return out_path, out_path.parent / summary
    return out_path / metrics_file(name), out_path / summary


def main(argv: list[str] | None, default_logs_dir: str, default_results_dir: str) -> int:
    """`ccp summarize [LOG ...] [--out PATH] [--name NAME]`."""
    parser = argparse.ArgumentParser(
        prog="ccp summarize",
        description="Turn usage logs into METRICS JSON and a Markdown summary.")
    parser.add_argument("logs", nargs="*", metavar="LOG",
                        help=f"usage files or logs folders (default: {default_logs_dir})")
    parser.add_argument("--out", default=default_results_dir,
                        help="results folder, or a .json path for the METRICS file "
                             f"(default: {default_results_dir})")
    parser.add_argument("--name", default=DEFAULT_NAME, help="run name: METRICS_<NAME>.json and "
                        "<NAME>-SUMMARY.md (default: METRICS.json and SUMMARY.md)")
    args = parser.parse_args(argv)
    try:
        df = read_usage(args.logs or [default_logs_dir])
    except FileNotFoundError as exc:
        print(f"UsageError: {exc}", file=sys.stderr)
        return 2
    metrics = summarize(df)
    metrics_path, summary_path = _output_paths(args.out, args.name)
    write_metrics(metrics, metrics_path)
    summary_path.write_text(render_summary(metrics, f"ccp usage summary — {args.name or 'logs'}"),
                            encoding="utf-8")
    print(f"{metrics['requests']} records ({metrics['bad_lines']} bad lines)")
    print(f"wrote {metrics_path}")
    print(f"wrote {summary_path}")
    return 0
