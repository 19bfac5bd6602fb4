"""`ccp db …`: the usage store, directly (no shim needed), on either engine.

`--db` is a SQLite file, a `sqlite:///path` or a `postgresql://…` URL (default: CCP_STORE_URL, else
CCP_DB_PATH, else <logs>/ccp.sqlite3). `status`, `export --csv FILE` and `import --jsonl FILE` work on
both; `merge DIR --out DIR` combines the `*.sqlite3` stores of several shims into one whose rollups
have the same shape as `GET /v1/usage/rollups` (buckets that still have samples are recomputed from
the merged samples, so a store found twice is not counted twice; older buckets are summed);
`merge DIR --out postgresql://…` moves each of them into one PostgreSQL store as `migrate` does.

`migrate --to postgresql://…` moves a SQLite store (`--db`) into PostgreSQL in one transaction:
every sample (by rid: one already there is kept, not doubled) and, as rollup rows, what the file's
pruned samples summed to; then it checks the counts and token sums of the moved rids, and (into an
empty database) every rollup bucket, and says so. A file already moved is refused (`--force`).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from proxy.config.load import load_settings
from proxy.sinks.engines import open_engine
from proxy.sinks.store import (
    _AGG,
    GRANULARITIES,
    ROLLUP_SUMS,
    SAMPLE_COLUMNS,
    _dirty,
    _recompute,
    connect,
    insert_records,
    is_postgres,
    refresh_rollups,
    rollup_rows,
    sqlite_path,
    status,
)
from proxy.sinks.usage_log import usage_records


def export_csv(db: str | Path, dest: str | Path) -> int:
    cols = [c for c in SAMPLE_COLUMNS if c != "record"]
    if is_postgres(db):
        from proxy.sinks.store_pg import PgEngine

        engine = PgEngine(str(db))
        try:
            rows = engine.raw(
                lambda c: c.execute(
                    f"SELECT {', '.join(cols)} FROM samples ORDER BY ts, id".encode()
                ).fetchall()
            )
        finally:
            engine.close()
        return _write_csv(dest, cols, rows)
    conn = connect(db, readonly=True)
    try:
        cur = conn.execute(f"SELECT {', '.join(cols)} FROM samples ORDER BY ts, rowid")
        return _write_csv(dest, cols, cur)
    finally:
        conn.close()


def _write_csv(dest: str | Path, cols: list[str], rows) -> int:
    n = 0
    with open(dest, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(cols)
        for row in rows:
            writer.writerow(list(row))
            n += 1
    return n


def import_jsonl(db: str | Path, src: str | Path) -> tuple[int, int]:
    """Usage records from a JSONL file into the store (by rid: nothing twice); (added, bad lines)."""
    recs, bad = usage_records(src)
    if is_postgres(db):
        from proxy.sinks import store_pg

        pg = store_pg.connect(str(db), autocommit=True)
        try:
            with pg.transaction():
                added = store_pg.insert_records(pg, recs, source="import")
        finally:
            pg.close()
        return added, bad
    conn = connect(db)
    try:
        with conn:
            added = insert_records(conn, recs, source="import")
        refresh_rollups(conn)
    finally:
        conn.close()
    return added, bad


def store_status(db: str | Path) -> dict:
    engine = open_engine(db)
    try:
        return engine.status()
    finally:
        engine.close()


# ---------------------------------------------------------------- SQLite -> PostgreSQL
_CHECK_SUMS = ("in_tokens", "out_tokens", "cache_read_tokens", "cache_creation_tokens")


def _sqlite_buckets(conn, g: int) -> dict[tuple, dict]:
    """Every bucket's totals, stored rollups and fresh samples together (rollup_rows, unshaped)."""
    name = next(k for k, v in GRANULARITIES.items() if v == g)
    dirty = _dirty(conn, g)
    rows = {
        (r["bucket"], r["model"], r["lane"]): dict(r)
        for r in conn.execute("SELECT * FROM rollups WHERE granularity = ?", (name,))
        if r["bucket"] not in dirty
    }
    rows.update({(r["bucket"], r["model"], r["lane"]): r for r in _recompute(conn, g, dirty)})
    return rows


def _pruned_parts(conn) -> list[tuple]:
    """The rollup rows of what a file's pruned samples summed to: each bucket's totals less what
    its samples still sum to (those move as samples). The maximum latency stays the bucket's."""
    out = []
    for name, g in GRANULARITIES.items():
        live = {
            (r["bucket"], r["model"], r["lane"]): dict(r)
            for r in conn.execute(_AGG.format(g=g), (float("-inf"), float("inf")))
        }
        for key, full in _sqlite_buckets(conn, g).items():
            have = live.get(key)
            part = [(full[k] or 0) - ((have or {}).get(k) or 0) for k in ROLLUP_SUMS]
            if part[0] > 0 or any(part[1:]):
                out.append((name, *key, *part, full["latency_ms_max"] or 0.0))
    return out


def _totals(rows: list[dict]) -> dict:
    return {
        k: sum(r[k] or 0 for r in rows)
        for k in ("requests", "errors", "in_tokens", "out_tokens", "tokens")
    }


def migrate_to_postgres(src: str | Path, url: str, force: bool = False) -> dict:
    """Move a SQLite store into PostgreSQL (see the module docstring); the report says what moved
    and what was checked (`ok`)."""
    from proxy.sinks import store_pg

    src_path = Path(sqlite_path(src)).resolve()
    marker = f"migrated:{src_path}"
    lite = connect(src_path, readonly=True)
    pg: Any = store_pg.connect(url, autocommit=True)  # (rows by name: proxy.sinks.store_pg.Row)
    try:
        rows = [tuple(r) for r in lite.execute(f"SELECT {', '.join(SAMPLE_COLUMNS)} FROM samples")]
        pruned = _pruned_parts(lite)
        lite_rollups = {g: _totals(rollup_rows(lite, g)) for g in GRANULARITIES}
        rid_at = SAMPLE_COLUMNS.index("rid")
        rids = [r[rid_at] for r in rows]
        lite_sums = dict.fromkeys(_CHECK_SUMS, 0)
        for r in rows:
            for k in _CHECK_SUMS:
                lite_sums[k] += r[SAMPLE_COLUMNS.index(k)] or 0
        done = pg.execute("SELECT value FROM meta WHERE key = %s", (marker,)).fetchone()
        if done and not force:
            return {
                "ok": False,
                "from": str(src_path),
                "to": store_pg.redact_url(url),
                "error": f"{src_path} was moved already ({done[0]}): use --force to move it again",
            }
        empty = pg.execute(
            "SELECT NOT EXISTS (SELECT 1 FROM samples) AND NOT EXISTS (SELECT 1 FROM rollups)"
        ).fetchone()[0]
        with pg.transaction():
            added = store_pg.insert_rows(pg, rows)
            if pruned:
                with pg.cursor() as cur:
                    cur.executemany(
                        "INSERT INTO rollups VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                        " ON CONFLICT (granularity, bucket, model, lane) DO UPDATE SET "
                        + ", ".join(f"{k} = rollups.{k} + EXCLUDED.{k}" for k in ROLLUP_SUMS)
                        + ", latency_ms_max = GREATEST(rollups.latency_ms_max, "
                        "EXCLUDED.latency_ms_max)",
                        pruned,
                    )
            pg.execute(
                "INSERT INTO meta (key, value) VALUES (%s, %s) "
                "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                (marker, f"{len(rows)} samples, {len(pruned)} pruned rollup rows"),
            )
        moved = pg.execute(
            "SELECT COUNT(*), "
            + ", ".join(f"COALESCE(SUM({k}), 0)::bigint" for k in _CHECK_SUMS)
            + " FROM samples WHERE rid = ANY(%s)",
            (rids,),
        ).fetchone()
        pg_sums = dict(zip(_CHECK_SUMS, moved[1:], strict=True))
        checks = {
            "samples": {"sqlite": len(rows), "postgresql": moved[0], "ok": moved[0] == len(rows)},
            "sums": {"sqlite": lite_sums, "postgresql": pg_sums, "ok": lite_sums == pg_sums},
        }
        if empty:
            pg_rollups = {g: _totals(store_pg.rollup_rows(pg, g)) for g in GRANULARITIES}
            checks["rollups"] = {
                "sqlite": lite_rollups,
                "postgresql": pg_rollups,
                "ok": lite_rollups == pg_rollups,
            }
    finally:
        lite.close()
        pg.close()
    return {
        "ok": all(c["ok"] for c in checks.values()),
        "from": str(src_path),
        "to": store_pg.redact_url(url),
        "samples": len(rows),
        "added": added,
        "already_there": len(rows) - added,
        "pruned_rollup_rows": len(pruned),
        "checks": checks,
    }


def merge_stores(sources: list[Path], out_path: Path) -> dict:
    """Combine stores into `out_path` (see the module docstring)."""
    out = connect(out_path)
    sums: dict[tuple, list] = {}
    samples = 0
    try:
        for src in sources:
            conn = connect(src, readonly=True)
            try:
                rows = [
                    tuple(r)
                    for r in conn.execute(f"SELECT {', '.join(SAMPLE_COLUMNS)} FROM samples")
                ]
                stored = conn.execute("SELECT * FROM rollups").fetchall()
            finally:
                conn.close()
            with out:
                samples += out.executemany(
                    f"INSERT OR IGNORE INTO samples ({', '.join(SAMPLE_COLUMNS)}) VALUES "
                    f"({', '.join('?' * len(SAMPLE_COLUMNS))})",
                    rows,
                ).rowcount
            for r in stored:
                key = (r["granularity"], r["bucket"], r["model"], r["lane"])
                acc = sums.setdefault(key, [0] * len(ROLLUP_SUMS) + [0.0])
                for i, k in enumerate(ROLLUP_SUMS):
                    acc[i] += r[k] or 0
                acc[-1] = max(acc[-1], r["latency_ms_max"] or 0.0)
        with out:
            out.execute("DELETE FROM rollups")
            out.executemany(
                "INSERT INTO rollups VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(*k, *v) for k, v in sums.items()],
            )
            out.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('rolled_rowid', '0')")
        refresh_rollups(out)  # buckets with samples: recomputed from the merged samples
        counts = {g: len(rollup_rows(out, g)) for g in GRANULARITIES}
    finally:
        out.close()
    return {
        "sources": [str(s) for s in sources],
        "out": str(out_path),
        "samples": samples,
        "rollups": counts,
    }


def _merge_into_postgres(folder: Path, url: str, force: bool, out: TextIO, err: TextIO) -> int:
    """Several shims' SQLite stores into one PostgreSQL store: each file moved (and checked) as by
    `migrate`; a sample two files share goes in once (by rid)."""
    sources = sorted(folder.rglob("*.sqlite3"))
    if not sources:
        print(f"UsageError: no *.sqlite3 store under {folder}", file=err)
        return 2
    reports = [migrate_to_postgres(src, url, force=force) for src in sources]
    summary = {
        "ok": all(r["ok"] for r in reports),
        "stores": len(reports),
        "samples": sum(r.get("samples", 0) for r in reports),
        "added": sum(r.get("added", 0) for r in reports),
        "moves": reports,
    }
    print(json.dumps(summary, indent=2), file=out)
    return 0 if summary["ok"] else 1


def db_main(argv: list[str], out: TextIO | None = None, err: TextIO | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ccp db", description="The usage store (SQLite or PostgreSQL)."
    )
    parser.add_argument(
        "--db",
        help="the store: a SQLite file or a postgresql:// URL (default: CCP_STORE_URL, else "
        "CCP_DB_PATH, else <logs>/ccp.sqlite3)",
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("status", help="size, samples, rollups")
    exp = sub.add_parser("export", help="samples as CSV")
    exp.add_argument("--csv", required=True, metavar="FILE", help="the CSV file to write")
    imp = sub.add_parser("import", help="usage records from a JSONL file (usage.jsonl)")
    imp.add_argument(
        "--jsonl",
        required=True,
        metavar="FILE",
        help="the usage log to read (a record already stored, by rid, is skipped)",
    )
    mer = sub.add_parser(
        "merge",
        help="combine the *.sqlite3 stores under DIR into --out DIR, or into a PostgreSQL store "
        "(--out postgresql://…: each moved as by migrate)",
    )
    mer.add_argument("dir", help="the folder searched for *.sqlite3 stores")
    mer.add_argument(
        "--out",
        required=True,
        metavar="DIR|URL",
        help="the folder of the merged store (DIR/ccp.sqlite3), or a postgresql:// URL",
    )
    mer.add_argument("--force", action="store_true", help="replace an existing merged store")
    mig = sub.add_parser(
        "migrate", help="move the SQLite store (--db) into PostgreSQL, counts and sums checked"
    )
    mig.add_argument(
        "--to", required=True, metavar="URL", help="the PostgreSQL store (postgresql://…)"
    )
    mig.add_argument("--force", action="store_true", help="move a file that was moved before")
    args = parser.parse_args(argv)
    out, err = out or sys.stdout, err or sys.stderr
    settings = load_settings() if args.db is None else None
    store: str = args.db or (settings.store_target if settings is not None else "")
    if args.cmd == "migrate":
        if not is_postgres(args.to):
            print(f"UsageError: --to {args.to!r}: expected a postgresql:// URL", file=err)
            return 2
        src = args.db or (settings.db_file if settings is not None else "")
        if is_postgres(src):
            print("UsageError: --db names the SQLite file to move, not a URL", file=err)
            return 2
        if not Path(sqlite_path(src)).exists():
            print(f"NotFound: no store at {src}", file=err)
            return 1
        report = migrate_to_postgres(src, args.to, force=args.force)
        print(json.dumps(report, indent=2), file=out)
        return 0 if report["ok"] else 1
    if args.cmd == "merge" and is_postgres(args.out):
        return _merge_into_postgres(Path(args.dir), args.out, args.force, out, err)
    if is_postgres(store):
        if args.cmd == "merge":
            print("UsageError: --db is a PostgreSQL URL; merge reads DIR, writes --out", file=err)
            return 2
        if args.cmd == "import":
            added, bad = import_jsonl(store, args.jsonl)
            where = open_engine(store).where
            print(
                f"imported {added} record(s) into {where}"
                + (f" ({bad} bad line(s) skipped)" if bad else ""),
                file=out,
            )
            return 0
        if args.cmd == "export":
            print(f"exported {export_csv(store, args.csv)} sample(s) to {args.csv}", file=out)
            return 0
        print(json.dumps(store_status(store), indent=2), file=out)
        return 0
    db = Path(sqlite_path(store))
    if args.cmd == "merge":
        target = Path(args.out) / "ccp.sqlite3"
        sources = sorted(
            p for p in Path(args.dir).rglob("*.sqlite3") if p.resolve() != target.resolve()
        )
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
        print(
            f"imported {added} record(s) into {db}"
            + (f" ({bad} bad line(s) skipped)" if bad else ""),
            file=out,
        )
        return 0
    if not db.exists():
        print(f"NotFound: no store at {db}", file=err)
        return 1
    if args.cmd == "export":
        print(f"exported {export_csv(db, args.csv)} sample(s) to {args.csv}", file=out)
        return 0
    print(json.dumps(status(db), indent=2), file=out)
    return 0


__all__ = [
    "db_main",
    "export_csv",
    "import_jsonl",
    "merge_stores",
    "migrate_to_postgres",
    "store_status",
]
