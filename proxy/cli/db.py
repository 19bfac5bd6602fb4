"""`ccp db …`: the SQLite usage store files, directly (no shim needed).

`status`, `export --csv FILE`, `import --jsonl FILE`, and `merge DIR --out DIR`, which combines the
`*.sqlite3` stores of several shims into one whose rollups have the same shape as
`GET /v1/usage/rollups` (buckets that still have samples are recomputed from the merged samples, so a
store found twice is not counted twice; older buckets are summed).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import TextIO

from proxy.config.load import load_settings
from proxy.sinks.store import (
    GRANULARITIES,
    ROLLUP_SUMS,
    SAMPLE_COLUMNS,
    connect,
    insert_records,
    refresh_rollups,
    rollup_rows,
    status,
)
from proxy.sinks.usage_log import usage_records


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
    recs, bad = usage_records(src)
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


def db_main(argv: list[str], out: TextIO | None = None, err: TextIO | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ccp db", description="The SQLite usage store.")
    parser.add_argument("--db", help="the store file (default: CCP_DB_PATH or <logs>/ccp.sqlite3)")
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
    mer = sub.add_parser("merge", help="combine the *.sqlite3 stores under DIR into --out DIR")
    mer.add_argument("dir", help="the folder searched for *.sqlite3 stores")
    mer.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="the folder of the merged store (DIR/ccp.sqlite3)",
    )
    mer.add_argument("--force", action="store_true", help="replace an existing merged store")
    args = parser.parse_args(argv)
    out, err = out or sys.stdout, err or sys.stderr
    db = Path(args.db or load_settings().db_file)
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


__all__ = ["db_main", "export_csv", "import_jsonl", "merge_stores"]
