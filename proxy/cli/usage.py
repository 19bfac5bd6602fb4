"""`ccp status`, `ccp usage [--banner]`, `ccp quotas reload [FILE]` and `ccp db …`.

The first three ask the running shim (the profile's port file, `proxy.cli.control.current_port`, or
`--url`); `status` and `usage` fall back to the store and quotas file on disk when no shim answers.
Both show the quota table (when quotas are configured) and the fuel gauge (proxy.sinks.usage_summary:
tokens, requests and errors per lane × model over the rolling window and the week), which the shim
(`GET /v1/usage/summary`) and the offline path compute with the same function.
`ccp db` (store files directly) lives in proxy.cli.db; its verbs are imported here too.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TextIO

import httpx

from proxy.cli.client import admin_headers, shim_url
from proxy.cli.db import db_main, export_csv, import_jsonl, merge_stores  # noqa: F401 - `ccp db`
from proxy.config.load import load_settings
from proxy.config.quotas import Quota, book_span
from proxy.config.settings import Settings
from proxy.sinks.engines import open_engine
from proxy.sinks.quotas import QuotaBook
from proxy.sinks.store import is_postgres
from proxy.sinks.usage_summary import (
    gauge_banner,
    gauge_lines,
    gauge_table,
    usage_summary,
    windows_for,
)

BAR = 12


# ---------------------------------------------------------------- talking to the shim
def _get(base: str, path: str) -> dict | None:
    return _answer(base, path)[0]


def _answer(base: str, path: str) -> tuple[dict | None, str | None]:
    """(the JSON of a 200, None) or (None, why not)."""
    try:
        resp = httpx.get(f"{base}{path}", timeout=5.0, trust_env=False)
    except httpx.HTTPError as exc:
        return None, f"no answer: {exc}"
    try:
        data = resp.json()
    except ValueError:
        return None, f"HTTP {resp.status_code}, not JSON"
    if resp.status_code == 200:
        return data, None
    error = data.get("error") if isinstance(data, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    return None, message or f"HTTP {resp.status_code}"


def offline_usage(settings: Settings, now: float) -> dict:
    """What GET /v1/usage (and /v1/usage/summary, under `summary`) says, computed from the quotas
    file and the store (no shim running): the book rebuilt as the shim rebuilds it at start.
    Either engine (CCP_STORE_URL): a PostgreSQL store is read as the shims left it."""
    target = settings.store_target
    book = QuotaBook(instance="" if is_postgres(target) else None)  # a fleet's: shares too
    span = book_span(settings.quotas)
    summary: dict | None = None
    note: str | None = f"no store at {target}"
    engine = open_engine(target) if is_postgres(target) or Path(target).exists() else None
    try:
        book.rebuild(settings.quotas, engine.quota_records(now - span) if engine and span else [])
        if engine is not None:
            summary = engine.read(usage_summary, now, windows_for(settings.quotas))
            note = None
    finally:
        if engine is not None:
            engine.close()
    return {
        "now": now,
        "mode": settings.reroute_mode,
        "source": settings.quotas.source,
        "offline": True,
        "models": {p: s.public() for p, s in book.states(now).items()},
        "summary": summary,
        "summary_error": note,
    }


def fetch_usage(settings: Settings, url: str | None, now: float) -> dict:
    base = shim_url(settings, url)
    usage = _get(base, "/v1/usage")
    if usage is None:
        return offline_usage(settings, now)
    rollups = _get(base, "/v1/usage/rollups?granularity=hour&since=-7d")
    usage["rollups"] = (rollups or {}).get("rollups", [])
    usage["summary"], usage["summary_error"] = _answer(base, "/v1/usage/summary")
    return usage


def _offline_rollups(settings: Settings, since: float) -> list[dict]:
    target = settings.store_target
    if not is_postgres(target) and not Path(target).exists():
        return []
    engine = open_engine(target)
    try:
        return engine.rollups("hour", since, None)
    finally:
        engine.close()


# ---------------------------------------------------------------- formatting (pure)
def peak_hour(pattern: str, rollups: list[dict]) -> str | None:
    """The hour bucket with the most tokens among models matching `pattern`."""
    quota = Quota(pattern)
    totals: dict[str, int] = {}
    for row in rollups:
        if row.get("model") and quota.matches(row["model"]):
            totals[row["bucket"]] = totals.get(row["bucket"], 0) + (row.get("tokens") or 0)
    if not totals:
        return None
    bucket = max(totals, key=lambda b: (totals[b], b))
    return f"{bucket[:13].replace('T', ' ')}h ({totals[bucket]} tok)"


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.0f}%"


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def flag(st: dict) -> str:
    return "BLOCK" if st.get("block") else "WARN" if st.get("warn") else "ok"


def status_rows(usage: dict) -> list[list[str]]:
    rows = []
    for pattern, st in usage.get("models", {}).items():
        auto = st.get("warn_pct_auto")
        warn = f"{st.get('warn_pct', 80):.0f}%" + (
            f" (auto {auto:.0f}%, conf {st.get('warn_pct_auto_confidence', 0):.2f})" if auto else ""
        )
        rows.append(
            [
                pattern,
                _pct(st.get("rolling_pct")),
                _pct(st.get("weekly_pct")),
                flag(st),
                f"{st.get('tokens_per_s') or 0:.1f}",
                _eta(st.get("eta_reset")),
                warn,
                peak_hour(pattern, usage.get("rollups") or []) or "-",
            ]
        )
    return rows


STATUS_HEADER = ["quota", "rolling", "weekly", "state", "tok/s", "reset in", "warn at", "peak hour"]


def meter(pct: float | None, width: int = BAR) -> str:
    fill = 0 if pct is None else min(width, int(round(width * pct / 100.0)))
    return "▕" + "█" * fill + " " * (width - fill) + "▏"


def banner(usage: dict) -> str:
    """One line for a status bar: every quota's rolling meter, weekly %, state and rate; without
    quotas, the fuel gauge per lane (tokens and requests in the rolling window, tokens in the week)."""
    if not usage.get("models") and usage.get("summary"):
        return "ccp " + gauge_banner(usage["summary"])
    parts = []
    for pattern, st in usage.get("models", {}).items():
        main = st.get("rolling_pct") if st.get("rolling_pct") is not None else st.get("weekly_pct")
        state = flag(st)
        parts.append(
            f"{pattern} {meter(main)} {_pct(main)} wk {_pct(st.get('weekly_pct'))}"
            f"{'' if state == 'ok' else ' ' + state} {st.get('tokens_per_s') or 0:.1f}t/s"
        )
    return "ccp " + (" | ".join(parts) if parts else "no quotas configured")


def print_table(rows: list[list[str]], header: list[str], out: TextIO) -> None:
    if out.isatty():
        from rich.console import Console
        from rich.table import Table

        table = Table(*header)
        for row in rows:
            table.add_row(*row)
        Console(file=out).print(table)
        return
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print(
            "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=False)).rstrip(), file=out
        )


# ---------------------------------------------------------------- verbs
def _url_parser(prog: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--url", help="the shim's base URL (default: the profile's running shim)")
    parser.add_argument("--json", action="store_true", help="print the raw JSON")
    return parser


def status_main(argv: list[str], out: TextIO | None = None) -> int:
    args = _url_parser(
        "ccp status",
        "Quota table (rolling %, weekly %, warn/block, tokens/s, "
        "peak hour) and the fuel gauge: tokens, requests and errors per lane and "
        "model over the rolling window and the week.",
    ).parse_args(argv)
    out = out or sys.stdout
    settings = load_settings()
    now = time.time()
    usage = fetch_usage(settings, args.url, now)
    if usage.get("offline"):
        usage["rollups"] = _offline_rollups(settings, now - 7 * 86400)
    if args.json:
        print(json.dumps(usage, indent=2), file=out)
        return 0
    from proxy.cli.controls import print_controls  # the runtime controls come first

    print_controls(settings, args.url, out)
    where = "offline (store on disk)" if usage.get("offline") else "running shim"
    print(
        f"ccp status — {where}; mode {usage.get('mode')}; quotas {usage.get('source') or 'none'}",
        file=out,
    )
    if usage.get("models"):
        print_table(status_rows(usage), STATUS_HEADER, out)
    print_gauge(usage, out)
    print_fleet(usage, out)
    return 0


def fleet_rows(usage: dict) -> list[list[str]]:
    """One row per instance of a fleet's store: its requests and tokens in the rolling window and
    the week (the fuel gauge's), then its share of each quota's rolling tokens; the total last.
    None of it (`[]`) for a store only one shim writes."""
    summary = usage.get("summary") or {}
    per = summary.get("instances") or []
    if len(per) < 2:
        return []
    quotas = {p: st.get("instances") or {} for p, st in (usage.get("models") or {}).items()}
    rows = []
    total = {w: {"requests": 0, "tokens": 0} for w in ("rolling", "week")}
    for entry in per:
        name = entry["instance"] or "(unnamed)"
        row = [name]
        for w in ("rolling", "week"):
            c = entry.get(w) or {}
            row.append(f"{c.get('requests', 0)} req, {c.get('tokens', 0)} tok")
            total[w]["requests"] += c.get("requests", 0)
            total[w]["tokens"] += c.get("tokens", 0)
        for shares in quotas.values():
            mine = (shares.get(entry["instance"] or "") or {}).get("rolling_tokens", 0)
            whole = sum(s.get("rolling_tokens", 0) for s in shares.values())
            row.append(f"{mine} tok ({100.0 * mine / whole:.0f}%)" if whole else "-")
        rows.append(row)
    last = ["fleet total"]
    last += [f"{total[w]['requests']} req, {total[w]['tokens']} tok" for w in ("rolling", "week")]
    for shares in quotas.values():
        last.append(f"{sum(s.get('rolling_tokens', 0) for s in shares.values())} tok")
    rows.append(last)
    return rows


def print_fleet(usage: dict, out: TextIO) -> None:
    """`ccp status` on a fleet's store: the fleet total and each instance's share."""
    rows = fleet_rows(usage)
    if not rows:
        return
    win = (usage.get("summary") or {}).get("windows") or {}
    rl = (win.get("rolling") or {}).get("label", "rolling")
    wl = (win.get("week") or {}).get("label", "week")
    header = ["instance", f"rolling {rl}", f"week {wl}"]
    header += [f"{p} share" for p in (usage.get("models") or {})]
    print(f"fleet — {len(rows) - 1} instances on one store", file=out)
    print_table(rows, header, out)


def print_gauge(usage: dict, out: TextIO) -> None:
    """The fuel gauge table of `ccp status` (or why there is none)."""
    summary = usage.get("summary")
    if not summary:
        print(_no_gauge(usage), file=out)
        return
    win = summary["windows"]
    print(
        f"fuel gauge — rolling {win['rolling']['label']}, week {win['week']['label']}"
        f"{_store_since(summary)}",
        file=out,
    )
    header, rows = gauge_table(summary)
    if rows:
        print_table(rows, header, out)
    else:
        print(f"no usage in the last {win['week']['label']}", file=out)


def _store_since(summary: dict) -> str:
    oldest, week = summary.get("oldest_sample"), summary["windows"]["week"]
    if oldest is None or oldest <= week["since"]:
        return ""
    since = time.strftime("%Y-%m-%d %H:%M", time.localtime(oldest))
    return f" (the store holds samples since {since})"


def _no_gauge(usage: dict) -> str:
    return f"fuel gauge: unavailable ({usage.get('summary_error') or 'no usage store'})"


def usage_main(argv: list[str], out: TextIO | None = None) -> int:
    parser = _url_parser(
        "ccp usage",
        "Quota usage per model, and the fuel gauge: tokens, "
        "requests and errors per lane and model over the rolling window and the "
        "week (--banner: one line).",
    )
    parser.add_argument(
        "--banner",
        action="store_true",
        help="one line, for a status bar: quota meters, else tokens per lane",
    )
    args = parser.parse_args(argv)
    out = out or sys.stdout
    usage = fetch_usage(load_settings(), args.url, time.time())
    if args.json:
        print(json.dumps(usage, indent=2), file=out)
    elif args.banner:
        print(banner(usage), file=out)
    else:
        for row in status_rows(usage):
            print(
                f"{row[0]}: rolling {row[1]} weekly {row[2]} {row[3]} {row[4]} tok/s "
                f"reset in {row[5]} warn at {row[6]}",
                file=out,
            )
        if not usage.get("models"):
            print("no quotas configured (CCP_QUOTAS_FILE)", file=out)
        lines = gauge_lines(usage["summary"]) if usage.get("summary") else [_no_gauge(usage)]
        print("\n".join(lines), file=out)
    return 0


def quotas_main(argv: list[str], out: TextIO | None = None, err: TextIO | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ccp quotas", description="Quotas of the running shim.")
    sub = parser.add_subparsers(dest="cmd", required=True)
    rel = sub.add_parser(
        "reload",
        help="re-read the quotas file (or FILE) and rebuild the book from "
        "the store, as a restart would; a bad file is rejected",
    )
    rel.add_argument(
        "file",
        nargs="?",
        help="a quotas file to use from now on, read by this command and sent to the shim "
        "(default: the shim re-reads its current one)",
    )
    rel.add_argument("--url", help="the shim's base URL (default: the profile's running shim)")
    args = parser.parse_args(argv)
    out, err = out or sys.stdout, err or sys.stderr
    settings = load_settings()
    base = shim_url(settings, args.url)
    body: dict[str, str] = {}
    if (
        args.file
    ):  # read here, by the operator: the shim reads only the files it was configured with
        path = Path(args.file).resolve()
        try:
            body = {"file": str(path), "text": path.read_text(encoding="utf-8")}
        except (OSError, UnicodeDecodeError) as exc:
            print(f"QuotaError: {args.file}: cannot read: {exc}", file=err)
            return 2
    try:
        resp = httpx.post(
            f"{base}/v1/quotas/reload",
            json=body,
            headers=admin_headers(settings),
            timeout=10.0,
            trust_env=False,
        )
    except httpx.HTTPError as exc:
        print(f"NotRunning: no shim answers on {base}: {exc}", file=err)
        return 1
    data = resp.json()
    if resp.status_code != 200:
        message = (data.get("error") or {}).get("message", resp.text)
        print(f"QuotaError: {message}", file=err)
        return 2 if resp.status_code == 400 else 1
    restored = data.get("restored_records")
    rebuilt = (
        f"the book rebuilt from {restored} stored record(s)"
        if restored is not None
        else "no store: the history in memory kept"
    )
    print(
        f"quotas reloaded from {data.get('source')} ({len(data.get('quotas', []))} quota(s)); "
        f"{rebuilt}",
        file=out,
    )
    return 0


__all__ = ["banner", "db_main", "merge_stores", "quotas_main", "status_main", "usage_main"]
