"""The fuel gauge: tokens, requests and errors per lane × model, over the rolling window and the week.

One reader, `usage_summary(conn, now, windows)`, over the store's samples (the rows the quota book is
rebuilt from): the shim answers `GET /v1/usage/summary` with it, and `ccp status` / `ccp usage` call
it on the store file when no shim answers, so both say the same. The rest is pure: `windows_for()`
and the text of the table, the report lines and the banner.

- windows: `rolling` is the longest rolling window of the configured quotas, else DEFAULT_ROLLING
  (5 h); `week` is 7 days. A window counts `now - span < ts <= now`, as the quota book does.
- requests: model requests only, the records the shim read a model from (`op` is stream, nonstream
  or count_tokens). A 404 of an unknown path, an admin call, a body that is not JSON: no request.
- errors: every record that is not a 2xx or has an `err_type` (a stream cut short answered 200),
  model request or not. Records without a lane or model have a row of their own (lane None).
- tokens: in + out (what a quota counts); cache read and creation tokens beside them.
- instances: the same counters per instance (the shim that wrote the row, CCP_INSTANCE): on a
  fleet's store each shim's share of the total (one entry, `null`, for a store of one shim).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from proxy.config.quotas import DEFAULT_ROLLING, DEFAULT_WEEK, QuotaConfig

MODEL_OPS = ("stream", "nonstream", "count_tokens")
COUNTERS = (
    "requests",
    "errors",
    "in_tokens",
    "out_tokens",
    "cache_read_tokens",
    "cache_creation_tokens",
)
WINDOWS = ("rolling", "week")
# each counter as a SQL value per sample row (a record's own counts)
_EXPR = {
    "requests": f"CASE WHEN op IN ({', '.join(repr(op) for op in MODEL_OPS)}) THEN 1 ELSE 0 END",
    "errors": "CASE WHEN err_type IS NOT NULL OR status IS NULL OR status < 200 OR status > 299 "
    "THEN 1 ELSE 0 END",
    **{k: f"COALESCE({k}, 0)" for k in COUNTERS[2:]},
}


def windows_for(config: QuotaConfig) -> dict[str, float]:
    """The gauge's windows in seconds: the quotas' (longest) rolling window, and the week."""
    rolling = [q.rolling_window for q in config.quotas if q.rolling_window]
    return {"rolling": max(rolling) if rolling else DEFAULT_ROLLING, "week": DEFAULT_WEEK}


def span_label(seconds: float) -> str:
    """5h, 7d, 90m, 45s: the largest unit that divides the span."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


# ---------------------------------------------------------------- load
def _sql(names: Iterable[str], by: str = "lane, model") -> str:
    cols = [
        f'SUM(CASE WHEN ts > ? THEN {expr} ELSE 0 END) AS "{w}.{k}"'
        for w in names
        for k, expr in _EXPR.items()
    ]
    return f"SELECT {by}, {', '.join(cols)} FROM samples WHERE ts > ? AND ts <= ? GROUP BY {by}"


def usage_summary(conn: sqlite3.Connection, now: float, windows: dict[str, float]) -> dict:
    """The fuel gauge at `now` from a store connection (see the module docstring)."""
    since = {w: now - span for w, span in windows.items()}
    args = [since[w] for w in windows for _ in _EXPR] + [min(since.values()), now]
    rows = [dict(r) for r in conn.execute(_sql(windows), args)]
    oldest = conn.execute("SELECT MIN(ts) FROM samples").fetchone()[0]
    summary = shape_summary(rows, windows, now, oldest)
    summary["instances"] = shape_instances(
        [dict(r) for r in conn.execute(_sql(windows, "instance"), args)], windows
    )
    return summary


def shape_instances(rows: list[dict], windows: dict[str, float]) -> list[dict]:
    """Aggregate rows grouped by `instance`: each instance's counters per window, by name."""
    out = []
    for r in rows:
        entry: dict = {"instance": r["instance"]}
        for w in windows:
            counts = {k: int(r[f"{w}.{k}"] or 0) for k in COUNTERS}
            counts["tokens"] = counts["in_tokens"] + counts["out_tokens"]
            entry[w] = counts
        out.append(entry)
    return sorted(out, key=lambda e: (e["instance"] is None, e["instance"] or ""))


# ---------------------------------------------------------------- pure
def _zero() -> dict:
    return dict.fromkeys((*COUNTERS, "tokens"), 0)


def _add(acc: dict, part: dict) -> None:
    for k in acc:
        acc[k] += part[k]


def shape_summary(
    rows: list[dict], windows: dict[str, float], now: float, oldest: float | None
) -> dict:
    """The summary from aggregate rows (`lane`, `model`, `"<window>.<counter>"`): one entry per
    lane × model, per lane, and in total, each with every window's counters."""
    out_rows = []
    for r in rows:
        entry = {"lane": r["lane"], "model": r["model"]}
        for w in windows:
            counts = {k: int(r[f"{w}.{k}"] or 0) for k in COUNTERS}
            counts["tokens"] = counts["in_tokens"] + counts["out_tokens"]
            entry[w] = counts
        out_rows.append(entry)
    out_rows.sort(
        key=lambda e: (e["lane"] is None, e["lane"] or "", e["model"] is None, e["model"] or "")
    )
    lanes: dict = {}
    total = {w: _zero() for w in windows}
    for entry in out_rows:
        lane = lanes.setdefault(
            entry["lane"], {"lane": entry["lane"], "models": 0, **{w: _zero() for w in windows}}
        )
        lane["models"] += 1
        for w in windows:
            _add(lane[w], entry[w])
            _add(total[w], entry[w])
    return {
        "now": now,
        "windows": {
            w: {"span_s": span, "label": span_label(span), "since": now - span}
            for w, span in windows.items()
        },
        "oldest_sample": oldest,
        "rows": out_rows,
        "lanes": list(lanes.values()),
        "total": total,
    }


def compact(n: int) -> str:
    """1234 → 1.2k, 2500000 → 2.5M (the banner's numbers)."""
    if n < 1000:
        return str(n)
    return f"{n / 1000:.1f}k" if n < 1_000_000 else f"{n / 1_000_000:.1f}M"


def _labels(summary: dict) -> tuple[str, str]:
    win = summary["windows"]
    return win["rolling"]["label"], win["week"]["label"]


def _has_cache(summary: dict) -> bool:
    return any(
        summary["total"][w][k]
        for w in WINDOWS
        for k in ("cache_read_tokens", "cache_creation_tokens")
    )


def gauge_table(summary: dict) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the `ccp status` fuel gauge: one row per lane × model, then a row per
    lane that served several models, then the total when there is more than one row."""
    rl, wl = _labels(summary)
    cache = _has_cache(summary)
    header = ["lane", "model"]
    for label in (rl, wl):
        header += [f"{label} req", f"{label} err", f"{label} in", f"{label} out"]
        if cache:
            header.append(f"{label} cache rd/wr")

    def cells(lane: str, model: str, entry: dict) -> list[str]:
        row = [lane, model]
        for w in WINDOWS:
            c = entry[w]
            row += [str(c["requests"]), str(c["errors"]), str(c["in_tokens"]), str(c["out_tokens"])]
            if cache:
                row.append(f"{c['cache_read_tokens']}/{c['cache_creation_tokens']}")
        return row

    rows = [cells(e["lane"] or "-", e["model"] or "-", e) for e in summary["rows"]]
    rows += [
        cells(lane["lane"] or "-", "(all)", lane) for lane in summary["lanes"] if lane["models"] > 1
    ]
    if len(summary["rows"]) > 1:
        rows.append(cells("(all)", "(all)", summary["total"]))
    return header, rows


def _phrase(c: dict) -> str:
    text = f"{c['requests']} req {c['errors']} err {c['in_tokens']} in {c['out_tokens']} out"
    if c["cache_read_tokens"] or c["cache_creation_tokens"]:
        text += f" cache {c['cache_read_tokens']} rd {c['cache_creation_tokens']} wr"
    return text


def gauge_lines(summary: dict) -> list[str]:
    """The `ccp usage` report: one line per lane × model, per lane that served several models,
    and the total when there is more than one line."""
    rl, wl = _labels(summary)

    def line(name: str, entry: dict) -> str:
        return f"{name}: {rl} {_phrase(entry['rolling'])} | {wl} {_phrase(entry['week'])}"

    lines = [f"fuel gauge (rolling {rl}, week {wl}):"]
    if not summary["rows"]:
        return lines + [f"  no usage in the last {wl}"]
    lines += [
        line(f"  {e['lane'] or 'no lane'} {e['model'] or 'no model'}", e) for e in summary["rows"]
    ]
    lines += [
        line(f"  lane {lane['lane'] or 'none'}", lane)
        for lane in summary["lanes"]
        if lane["models"] > 1
    ]
    if len(summary["rows"]) > 1:
        lines.append(line("  total", summary["total"]))
    return lines


def gauge_banner(summary: dict) -> str:
    """The banner's part without quotas: per lane, tokens and requests (errors when any) in the
    rolling window, and tokens in the week."""
    rl, wl = _labels(summary)
    parts = []
    for lane in summary["lanes"]:
        r, w = lane["rolling"], lane["week"]
        err = f" {r['errors']} err" if r["errors"] else ""
        parts.append(
            f"{lane['lane'] or 'other'} {rl} {compact(r['tokens'])} tok "
            f"{r['requests']} req{err} {wl} {compact(w['tokens'])} tok"
        )
    return " | ".join(parts) if parts else f"no usage in the last {wl}"
