"""`ccp status`, `ccp usage [--banner]`, `ccp quotas reload [FILE]` and `ccp db …`.

The first three ask the running shim (the profile's port file, `proxy.control.current_port`, or
`--url`); `status` and `usage` fall back to the store and quotas file on disk when no shim answers.
`ccp db` works on store files directly: `status`, `export --csv FILE`, `import --jsonl FILE`, and
`merge DIR --out DIR`, which combines the `*.sqlite3` stores of several shims into one whose rollups
have the same shape as `GET /v1/usage/rollups` (buckets that still have samples are recomputed from the
merged samples, so a store found twice is not counted twice; older buckets are summed).
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path
from typing import TextIO

import httpx

from proxy.quotas import Quota, QuotaBook
from proxy.settings import Settings
from proxy.store import (GRANULARITIES, ROLLUP_SUMS, SAMPLE_COLUMNS, connect,
                         insert_records, quota_records, refresh_rollups, rollup_rows, status)

LOCALHOST = "127.0.0.1"
BAR = 12


# ---------------------------------------------------------------- talking to the shim
def shim_url(settings: Settings, url: str | None = None) -> str:
    if url:
        return url.rstrip("/")
    from proxy.control import current_port
    from proxy.profiles import RunFiles
    return f"http://{LOCALHOST}:{current_port(settings, RunFiles(Path(settings.logs_dir)))}"


def _admin_headers(settings: Settings) -> dict:
    token = settings.admin_token.reveal()
    return {"authorization": f"Bearer {token}"} if token else {}


def _get(base: str, path: str) -> dict | None:
    try:
        resp = httpx.get(f"{base}{path}", timeout=5.0, trust_env=False)
    except httpx.HTTPError:
        return None
    return resp.json() if resp.status_code == 200 else None


def offline_usage(settings: Settings, now: float) -> dict:
    """What GET /v1/usage says, computed from the quotas file and the store (no shim running)."""
    book = QuotaBook(settings.quotas)
    spans = [max(q.weekly_window, q.rolling_window or 0.0) for q in settings.quotas.quotas]
    if spans and Path(settings.db_file).exists():
        conn = connect(settings.db_file, readonly=True)
        try:
            book.restore(quota_records(conn, now - max(spans)))
        finally:
            conn.close()
    return {"now": now, "mode": settings.reroute_mode, "source": settings.quotas.source,
            "offline": True, "models": {p: s.public() for p, s in book.states(now).items()}}


def fetch_usage(settings: Settings, url: str | None, now: float) -> dict:
    base = shim_url(settings, url)
    usage = _get(base, "/v1/usage")
    if usage is None:
        return offline_usage(settings, now)
    rollups = _get(base, "/v1/usage/rollups?granularity=hour&since=-7d")
    usage["rollups"] = (rollups or {}).get("rollups", [])
    return usage


def _offline_rollups(settings: Settings, since: float) -> list[dict]:
    if not Path(settings.db_file).exists():
        return []
    conn = connect(settings.db_file, readonly=True)
    try:
        return rollup_rows(conn, "hour", since)
    finally:
        conn.close()


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
            f" (auto {auto:.0f}%, conf {st.get('warn_pct_auto_confidence', 0):.2f})" if auto else "")
        rows.append([pattern, _pct(st.get("rolling_pct")), _pct(st.get("weekly_pct")), flag(st),
                     f"{st.get('tokens_per_s') or 0:.1f}", _eta(st.get("eta_reset")), warn,
                     peak_hour(pattern, usage.get("rollups") or []) or "-"])
    return rows


STATUS_HEADER = ["quota", "rolling", "weekly", "state", "tok/s", "reset in", "warn at", "peak hour"]


def meter(pct: float | None, width: int = BAR) -> str:
    fill = 0 if pct is None else min(width, int(round(width * pct / 100.0)))
    return "▕" + "█" * fill + " " * (width - fill) + "▏"


def banner(usage: dict) -> str:
    """One line for a status bar: every quota's rolling meter, weekly %, state and rate."""
    parts = []
    for pattern, st in usage.get("models", {}).items():
        main = st.get("rolling_pct") if st.get("rolling_pct") is not None else st.get("weekly_pct")
        state = flag(st)
        parts.append(f"{pattern} {meter(main)} {_pct(main)} wk {_pct(st.get('weekly_pct'))}"
                     f"{'' if state == 'ok' else ' ' + state} {st.get('tokens_per_s') or 0:.1f}t/s")
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
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip(), file=out)


# ---------------------------------------------------------------- verbs
def _url_parser(prog: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--url", help="the shim's base URL (default: the profile's running shim)")
    parser.add_argument("--json", action="store_true", help="print the raw JSON")
    return parser


def status_main(argv: list[str], out: TextIO | None = None) -> int:
    args = _url_parser("ccp status", "Quota table: rolling %, weekly %, warn/block, tokens/s, "
                       "peak hour.").parse_args(argv)
    out = out or sys.stdout
    settings = Settings.from_env()
    now = time.time()
    usage = fetch_usage(settings, args.url, now)
    if usage.get("offline"):
        usage["rollups"] = _offline_rollups(settings, now - 7 * 86400)
    if args.json:
        print(json.dumps(usage, indent=2), file=out)
        return 0
    where = "offline (store on disk)" if usage.get("offline") else "running shim"
    print(f"ccp status — {where}; mode {usage.get('mode')}; quotas {usage.get('source') or 'none'}",
          file=out)
    print_table(status_rows(usage), STATUS_HEADER, out)
    return 0


def usage_main(argv: list[str], out: TextIO | None = None) -> int:
    parser = _url_parser("ccp usage", "Quota usage per model (--banner: one-line meter).")
    parser.add_argument("--banner", action="store_true", help="one line, for a status bar")
    args = parser.parse_args(argv)
    out = out or sys.stdout
    usage = fetch_usage(Settings.from_env(), args.url, time.time())
    if args.json:
        print(json.dumps(usage, indent=2), file=out)
    elif args.banner:
        print(banner(usage), file=out)
    else:
        for row in status_rows(usage):
            print(f"{row[0]}: rolling {row[1]} weekly {row[2]} {row[3]} {row[4]} tok/s "
                  f"reset in {row[5]} warn at {row[6]}", file=out)
        if not usage.get("models"):
            print("no quotas configured (CCP_QUOTAS_FILE)", file=out)
    return 0


def quotas_main(argv: list[str], out: TextIO | None = None, err: TextIO | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ccp quotas", description="Quotas of the running shim.")
    sub = parser.add_subparsers(dest="cmd", required=True)
    rel = sub.add_parser("reload", help="re-read the quotas file (or FILE); a bad file is rejected")
    rel.add_argument("file", nargs="?")
    rel.add_argument("--url")
    args = parser.parse_args(argv)
    out, err = out or sys.stdout, err or sys.stderr
    settings = Settings.from_env()
    base = shim_url(settings, args.url)
    body = {"file": str(Path(args.file).resolve())} if args.file else {}
    try:
        resp = httpx.post(f"{base}/v1/quotas/reload", json=body, headers=_admin_headers(settings),
                          timeout=10.0, trust_env=False)
    except httpx.HTTPError as exc:
        print(f"NotRunning: no shim answers on {base}: {exc}", file=err)
        return 1
    data = resp.json()
    if resp.status_code != 200:
        message = (data.get("error") or {}).get("message", resp.text)
        print(f"QuotaError: {message}", file=err)
        return 2 if resp.status_code == 400 else 1
    print(f"quotas reloaded from {data.get('source')} ({len(data.get('quotas', []))} quota(s))",
          file=out)
    return 0


# ---------------------------------------------------------------- ccp db
def export_csv(db: str | Path, dest: str | Path) -> int:
    conn = connect(db, readonly=True)
    cols = [c for c in SAMPLE_COLUMNS if c != "record"]
    try:
        with open(dest, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(cols)
            n = 0
            for row in conn.execute(f"SELECT {', '.join(cols)} FROM samples ORDER BY ts, rowid"):
                writer.writerow(list(row))
                n += 1
    finally:
        conn.close()
    return n


def import_jsonl(db: str | Path, src: str | Path) -> tuple[int, int]:
    """Usage records from a JSONL file into the store (by rid: nothing twice); (added, bad lines)."""
    recs, bad = [], 0
    with open(src, encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                bad += 1
                continue
            if isinstance(rec, dict):
                recs.append(rec)
            else:
                bad += 1
    conn = connect(db)
    try:
        with conn:
            added = insert_records(conn, recs, source="import")
        refresh_rollups(conn)
    finally:
        conn.close()
    return added, bad


def merge_stores(sources: list[Path], out_path: Path) -> dict:
    """Combine stores into `out_path` (see the module docstring)."""
    out = connect(out_path)
    sums: dict[tuple, list] = {}
    samples = 0
    try:
        for src in sources:
            conn = connect(src, readonly=True)
            try:
                rows = [tuple(r) for r in conn.execute(
                    f"SELECT {', '.join(SAMPLE_COLUMNS)} FROM samples")]
                stored = conn.execute("SELECT * FROM rollups").fetchall()
            finally:
                conn.close()
            with out:
                samples += out.executemany(
                    f"INSERT OR IGNORE INTO samples ({', '.join(SAMPLE_COLUMNS)}) VALUES "
                    f"({', '.join('?' * len(SAMPLE_COLUMNS))})", rows).rowcount
            for r in stored:
                key = (r["granularity"], r["bucket"], r["model"], r["lane"])
                acc = sums.setdefault(key, [0] * len(ROLLUP_SUMS) + [0.0])
                for i, k in enumerate(ROLLUP_SUMS):
                    acc[i] += r[k] or 0
                acc[-1] = max(acc[-1], r["latency_ms_max"] or 0.0)
        with out:
            out.execute("DELETE FROM rollups")
            out.executemany("INSERT INTO rollups VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            [(*k, *v) for k, v in sums.items()])
            out.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('rolled_rowid', '0')")
        refresh_rollups(out)  # buckets with samples: recomputed from the merged samples
        counts = {g: len(rollup_rows(out, g)) for g in GRANULARITIES}
    finally:
        out.close()
    return {"sources": [str(s) for s in sources], "out": str(out_path), "samples": samples,
            "rollups": counts}


def db_main(argv: list[str], out: TextIO | None = None, err: TextIO | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ccp db", description="The SQLite usage store.")
    parser.add_argument("--db", help="the store file (default: CCP_DB_PATH or <logs>/ccp.sqlite3)")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("status", help="size, samples, rollups")
    exp = sub.add_parser("export", help="samples as CSV")
    exp.add_argument("--csv", required=True, metavar="FILE")
    imp = sub.add_parser("import", help="usage records from a JSONL file (usage.jsonl)")
    imp.add_argument("--jsonl", required=True, metavar="FILE")
    mer = sub.add_parser("merge", help="combine the *.sqlite3 stores under DIR into --out DIR")
    mer.add_argument("dir")
    mer.add_argument("--out", required=True, metavar="DIR")
    mer.add_argument("--force", action="store_true", help="replace an existing merged store")
    args = parser.parse_args(argv)
    out, err = out or sys.stdout, err or sys.stderr
    db = Path(args.db or Settings.from_env().db_file)
    if args.cmd == "merge":
        target = Path(args.out) / "ccp.sqlite3"
        sources = sorted(p for p in Path(args.dir).rglob("*.sqlite3")
                         if p.resolve() != target.resolve())
        if not sources:
            print(f"UsageError: no *.sqlite3 store under {args.dir}", file=err)
            return 2
        if target.exists():
            if not args.force:
                print(f"UsageError: {target} exists (use --force to replace it)", file=err)
                return 2
            for p in (target, Path(f"{target}-wal"), Path(f"{target}-shm")):
                p.unlink(missing_ok=True)
        print(json.dumps(merge_stores(sources, target), indent=2), file=out)
        return 0
    if args.cmd == "import":
        added, bad = import_jsonl(db, args.jsonl)
        print(f"imported {added} record(s) into {db}" + (f" ({bad} bad line(s) skipped)" if bad else ""),
              file=out)
        return 0
    if not db.exists():
        print(f"NotFound: no store at {db}", file=err)
        return 1
    if args.cmd == "export":
        print(f"exported {export_csv(db, args.csv)} sample(s) to {args.csv}", file=out)
        return 0
    print(json.dumps(status(db), indent=2), file=out)
    return 0


__all__ = ["banner", "db_main", "merge_stores", "quotas_main", "status_main",
           "usage_main"]
