"""The usage store: every usage record also kept in SQLite (`CCP_DB_PATH`, WAL), with hour/day rollups.

Writes never block the event loop: `UsageStore.write(rec)` only appends a row to a deque; one
writer thread owns the write connection and commits in batches. Rollups are refreshed on an
interval by an asyncio task that runs the SQL in a thread (`rollup_loop`), which also prunes
samples older than `CCP_SAMPLE_TTL_DAYS` (only samples already rolled up, so the rollups keep what
the samples lose).

A rollup refresh recomputes only the buckets that received samples since the last one (tracked by
rowid, so a long stream recorded late still lands in its bucket). Readers see fresh rollups without
waiting for the task: `rollup_rows()` recomputes the dirty buckets on the fly.

The file carries its schema version in `PRAGMA user_version`; every connection brings an older
file up to SCHEMA_VERSION (MIGRATIONS, all in one transaction) and refuses a newer one (SchemaError,
naming both versions), since a file a newer ccp wrote may mean something this code would get wrong.

When the store cannot be opened or written (a read-only path, a full disk, a newer schema) it logs
one line per kind of failure, counts every record it could not keep (`ccp_store_write_errors_total`
and `ccp_sink_write_errors_total{sink="store"}`, proxy.sinks.health), and carries on: the JSONL log
is written first and never depends on it. A store that opened and then failed to write (a full disk)
keeps trying with each batch, so it writes again by itself once there is room; one that could not
be opened stays off until the shim restarts.

The books agree after a crash: `reconcile(path, logs_dir)`, run at start before the quota book is
rebuilt from the store, imports the records the usage log holds and the store lacks (those a
SIGKILL caught between the JSONL line and the store's commit), by rid, never twice. It reads the log
from its end and stops at the first record that ended RECONCILE_MARGIN before the store's newest
one, so start stays fast however big the log is.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

try:
    import orjson
except ImportError:  # optional: the stdlib encoder does the same, slower
    orjson = None  # type: ignore[assignment]  # (an optional module: None when missing)

from proxy.core.record import CONTROL_OP
from proxy.sinks.health import STORE, SinkHealth
from proxy.sinks.quotas import record_time
from proxy.sinks.usage_log import records_backwards

if TYPE_CHECKING:
    from proxy.sinks.metrics import Metrics

log = logging.getLogger("ccp.store")

GRANULARITIES = {"hour": 3600, "day": 86400}
BATCH = 500
GATHER_SECONDS = 0.05  # records wait at most this long for the commit that carries them
WRITER_CACHE_KB = 256  # the writer connection's page cache
SAMPLE_COLUMNS = (
    "rid",
    "ts",
    "model",
    "upstream_model",
    "lane",
    "provider",
    "decision",
    "op",
    "status",
    "upstream_status",
    "err_type",
    "retries",
    "in_tokens",
    "out_tokens",
    "cache_read_tokens",
    "cache_creation_tokens",
    "latency_ms",
    "ttfb_ms",
    "session",
    "source",
    "instance",
    "record",
)
ROLLUP_SUMS = (
    "requests",
    "errors",
    "in_tokens",
    "out_tokens",
    "cache_read_tokens",
    "cache_creation_tokens",
    "latency_ms_sum",
)


# ---------------------------------------------------------------- the schema and its versions
# The schema, as the steps that build it: MIGRATIONS[n - 1] takes a file from version n - 1 to n.
# A file made before the version was kept has version 1's tables and user_version 0, so version 1
# creates them only where they are missing; a new file runs every step (the same transaction), so
# there is one way a schema comes to be. Append a step to change the schema; never edit one.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: samples, hour/day rollups, the rollup watermark
    (
        """CREATE TABLE IF NOT EXISTS samples (
  rid TEXT UNIQUE, ts REAL NOT NULL, model TEXT, lane TEXT, provider TEXT, decision TEXT, op TEXT,
  status INTEGER, upstream_status INTEGER, err_type TEXT, in_tokens INTEGER, out_tokens INTEGER,
  cache_read_tokens INTEGER, cache_creation_tokens INTEGER, latency_ms REAL, ttfb_ms REAL,
  session TEXT, source TEXT, record TEXT)""",
        "CREATE INDEX IF NOT EXISTS samples_ts ON samples(ts)",
        """CREATE TABLE IF NOT EXISTS rollups (
  granularity TEXT NOT NULL, bucket INTEGER NOT NULL, model TEXT NOT NULL, lane TEXT NOT NULL,
  requests INTEGER, errors INTEGER, in_tokens INTEGER, out_tokens INTEGER, cache_read_tokens INTEGER,
  cache_creation_tokens INTEGER, latency_ms_sum REAL, latency_ms_max REAL,
  PRIMARY KEY (granularity, bucket, model, lane))""",
        "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)",
    ),
    # 2: the model the upstream was asked for (what it bills by, when a route maps the model) and
    # the retries a request took, as columns for reports and `ccp db export`; the rows already
    # kept get them from their JSON line (the `record` column)
    (
        "ALTER TABLE samples ADD COLUMN upstream_model TEXT",
        "ALTER TABLE samples ADD COLUMN retries INTEGER",
        (
            "UPDATE samples SET upstream_model = json_extract(record, '$.upstream_model'), "
            "retries = json_extract(record, '$.retries') WHERE json_valid(record)"
        ),
    ),
    # 3: which shim wrote a row (CCP_INSTANCE): several shims share one PostgreSQL store, and a
    # merged or migrated file keeps who wrote what; rows kept before have none
    ("ALTER TABLE samples ADD COLUMN instance TEXT",),
)
SCHEMA_VERSION = len(MIGRATIONS)


class SchemaError(sqlite3.DatabaseError):
    """A store file this code must not use: a newer ccp's schema, or an old one it could not
    upgrade. A sqlite3 error, so that every place that copes with an unusable store copes with
    this one too."""

    def __init__(self, message: str, found: int, known: int) -> None:
        super().__init__(message)
        self.found = found
        self.known = known


def schema_version(conn: sqlite3.Connection) -> int:
    return conn.execute("PRAGMA user_version").fetchone()[0]


def _db_file(conn: sqlite3.Connection) -> str:
    return next((r[2] for r in conn.execute("PRAGMA database_list") if r[1] == "main"), "") or "?"


def _newer(conn: sqlite3.Connection, found: int, known: int) -> SchemaError:
    return SchemaError(
        f"{_db_file(conn)} has store schema version {found}, newer than this ccp's "
        f"{known}: a newer ccp wrote it (run that one, or point CCP_DB_PATH at "
        f"another file)",
        found,
        known,
    )


def migrate(conn: sqlite3.Connection, migrations: tuple[tuple[str, ...], ...] = MIGRATIONS) -> int:
    """Bring the file to the latest version in one transaction (all the steps it lacks, or none:
    a step that fails leaves the file as it was); returns the version the file had.

    The version is read again under the write lock: another process may have upgraded the file
    while this one waited for it."""
    known = len(migrations)
    found = schema_version(conn)
    if found == known:
        return found
    if found > known:
        raise _newer(conn, found, known)
    conn.execute("BEGIN IMMEDIATE")
    try:
        found = schema_version(conn)
        if found > known:
            raise _newer(conn, found, known)
        for step in migrations[found:]:
            for sql in step:
                conn.execute(sql)
        conn.execute(f"PRAGMA user_version = {known:d}")
    except BaseException:
        conn.rollback()
        raise
    conn.commit()
    if found < known:
        log.info("usage store %s: schema version %d -> %d", _db_file(conn), found, known)
    return found


# ---------------------------------------------------------------- SQL helpers (any connection)
def _open_readonly(path: str | os.PathLike) -> sqlite3.Connection:
    conn = sqlite3.connect(f"file:{Path(path).resolve()}?mode=ro", uri=True, timeout=10.0)
    conn.row_factory = sqlite3.Row
    return conn


def connect(path: str | os.PathLike, readonly: bool = False) -> sqlite3.Connection:
    """A connection in WAL mode to a file at SCHEMA_VERSION (SchemaError for a newer file).

    Read-only ones never create the file. An older file is upgraded first, by a writable
    connection of its own, so that `ccp db export` or `merge` read the same columns from a file no
    shim has opened since an upgrade; an older file that cannot be written is a SchemaError."""
    if readonly:
        conn = _open_readonly(path)
        try:
            found = schema_version(conn)
            if found > SCHEMA_VERSION:
                raise _newer(conn, found, SCHEMA_VERSION)
        except BaseException:
            conn.close()
            raise
        if found == SCHEMA_VERSION:
            return conn
        conn.close()
        try:
            connect(path).close()
        except SchemaError:
            raise
        except sqlite3.Error as exc:
            raise SchemaError(
                f"{path} has store schema version {found}, older than this ccp's "
                f"{SCHEMA_VERSION}, and could not be upgraded: {exc}",
                found,
                SCHEMA_VERSION,
            ) from exc
        return _open_readonly(path)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), timeout=10.0)
    try:
        found = schema_version(conn)
        if found > SCHEMA_VERSION:  # before anything is written to it, the journal mode included
            raise _newer(conn, found, SCHEMA_VERSION)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        migrate(conn)
    except BaseException:
        conn.close()
        raise
    conn.row_factory = sqlite3.Row
    return conn


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _record_json(rec: Mapping[str, Any]) -> str:
    """The record as compact JSON text: orjson (the stdlib encoder would be most of the writer
    thread's time), the stdlib for what orjson refuses."""
    if orjson is not None:
        try:
            return orjson.dumps(rec, default=str).decode()
        except TypeError:
            pass
    return json.dumps(rec, separators=(",", ":"), default=str)


def sample_row(
    rec: Mapping[str, Any],
    source: str = "shim",
    line: bytes | None = None,
    instance: str | None = None,
) -> tuple:
    """The samples row of one usage record (in SAMPLE_COLUMNS order); `line` is the record's JSONL
    line when it was written already (the `record` column is that text, not a second encoding);
    `instance` the shim that wrote it (CCP_INSTANCE)."""
    t = record_time(rec)
    get = rec.get
    text = line[:-1].decode() if line is not None else _record_json(rec)
    return (
        get("rid") or f"gen-{uuid.uuid4().hex}",
        t if t is not None else 0.0,
        get("model"),
        get("upstream_model"),
        get("lane"),
        get("provider"),
        get("decision"),
        get("op"),
        get("status"),
        get("upstream_status"),
        get("err_type"),
        get("retries"),
        get("in_tokens"),
        get("out_tokens"),
        get("cache_read_tokens"),
        get("cache_creation_tokens"),
        get("latency_ms"),
        get("ttfb_ms"),
        get("session"),
        source,
        instance,
        text,
    )


# Rows per INSERT statement. SQLite runs one statement in one step, and Python's sqlite3 lets go of
# the GIL around every step, so `executemany` (a step per row) made the writer thread and the event
# loop hand the GIL back and forth once per record. A batch goes in statements of 64 rows, the rest
# in power-of-two sizes (37 = 32 + 4 + 1): seven statement texts in all, so the connection's
# statement cache (128 compiled statements, each the size of its row count) stays small.
ROWS_PER_INSERT = 64
_INSERT = f"INSERT OR IGNORE INTO samples ({', '.join(SAMPLE_COLUMNS)}) VALUES "
_ROW_MARKS = f"({', '.join('?' * len(SAMPLE_COLUMNS))})"
_INSERTS = {
    n: _INSERT + ", ".join([_ROW_MARKS] * n)
    for n in (1 << k for k in range(ROWS_PER_INSERT.bit_length()))
}


def insert_records(
    conn: sqlite3.Connection,
    recs: Iterable[dict],
    source: str = "shim",
    instance: str | None = None,
) -> int:
    """Insert the samples rows of `recs` (a rid already stored is skipped); returns rows added."""
    return insert_rows(conn, [sample_row(r, source, None, instance) for r in recs])


def insert_rows(conn: sqlite3.Connection, rows: list[tuple]) -> int:
    """Insert `sample_row()` tuples (a rid already stored is skipped); returns rows added."""
    added = 0
    i = 0
    while i < len(rows):
        n = min(ROWS_PER_INSERT, 1 << ((len(rows) - i).bit_length() - 1))
        added += conn.execute(_INSERTS[n], list(chain.from_iterable(rows[i : i + n]))).rowcount
        i += n
    return added


def _meta(conn: sqlite3.Connection, key: str, default: str | None = None) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return row[0] if row else default


def _set_meta(conn: sqlite3.Connection, key: str, value: object) -> None:
    conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, str(value)))


_AGG = """SELECT CAST(ts / {g} AS INTEGER) * {g} AS bucket, COALESCE(model, '') AS model,
  COALESCE(lane, '') AS lane, COUNT(*) AS requests,
  SUM(CASE WHEN err_type IS NOT NULL OR status >= 400 THEN 1 ELSE 0 END) AS errors,
  COALESCE(SUM(in_tokens), 0) AS in_tokens, COALESCE(SUM(out_tokens), 0) AS out_tokens,
  COALESCE(SUM(cache_read_tokens), 0) AS cache_read_tokens,
  COALESCE(SUM(cache_creation_tokens), 0) AS cache_creation_tokens,
  COALESCE(SUM(latency_ms), 0) AS latency_ms_sum, COALESCE(MAX(latency_ms), 0) AS latency_ms_max
  FROM samples WHERE ts >= ? AND ts < ? GROUP BY 1, 2, 3"""


def _dirty(conn: sqlite3.Connection, g: int) -> list[int]:
    wm = int(_meta(conn, "rolled_rowid", "0") or 0)
    return [
        r[0]
        for r in conn.execute(
            f"SELECT DISTINCT CAST(ts / {g} AS INTEGER) * {g} FROM samples WHERE rowid > ?", (wm,)
        )
    ]


def _recompute(conn: sqlite3.Connection, g: int, buckets: list[int]) -> list[dict]:
    rows = []
    for b in buckets:
        rows += [dict(r) for r in conn.execute(_AGG.format(g=g), (b, b + g))]
    return rows


def refresh_rollups(conn: sqlite3.Connection) -> int:
    """Recompute the hour/day buckets that got samples since the last refresh; returns rows written."""
    written = 0
    top = conn.execute("SELECT COALESCE(MAX(rowid), 0) FROM samples").fetchone()[0]
    with conn:
        for name, g in GRANULARITIES.items():
            buckets = _dirty(conn, g)
            for b in buckets:
                conn.execute("DELETE FROM rollups WHERE granularity = ? AND bucket = ?", (name, b))
            for row in _recompute(conn, g, buckets):
                conn.execute(
                    "INSERT INTO rollups VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        name,
                        row["bucket"],
                        row["model"],
                        row["lane"],
                        *(row[k] for k in ROLLUP_SUMS),
                        row["latency_ms_max"],
                    ),
                )
                written += 1
        _set_meta(conn, "rolled_rowid", top)
    return written


def prune(conn: sqlite3.Connection, before: float) -> int:
    """Delete samples older than `before` that are already rolled up."""
    wm = int(_meta(conn, "rolled_rowid", "0") or 0)
    with conn:
        return conn.execute(
            "DELETE FROM samples WHERE ts < ? AND rowid <= ?", (before, wm)
        ).rowcount


def _shape(row: dict, granularity: str) -> dict:
    n = row["requests"] or 0
    return {
        "granularity": granularity,
        "bucket": iso(row["bucket"]),
        "bucket_ts": row["bucket"],
        "model": row["model"] or None,
        "lane": row["lane"] or None,
        **{k: row[k] for k in ROLLUP_SUMS if k != "latency_ms_sum"},
        "tokens": (row["in_tokens"] or 0) + (row["out_tokens"] or 0),
        "latency_ms_avg": round(row["latency_ms_sum"] / n, 3) if n else None,
        "latency_ms_max": row["latency_ms_max"],
    }


def rollup_rows(
    conn: sqlite3.Connection, granularity: str, since: float | None = None, model: str | None = None
) -> list[dict]:
    """The API's rollup rows: stored buckets, with those that got samples since recomputed now."""
    if granularity not in GRANULARITIES:
        raise ValueError(f"granularity={granularity!r}: expected hour or day")
    g = GRANULARITIES[granularity]
    dirty = _dirty(conn, g)
    rows = {
        (r["bucket"], r["model"], r["lane"]): dict(r)
        for r in conn.execute("SELECT * FROM rollups WHERE granularity = ?", (granularity,))
        if r["bucket"] not in dirty
    }
    rows.update({(r["bucket"], r["model"], r["lane"]): r for r in _recompute(conn, g, dirty)})
    out = [
        _shape(r, granularity)
        for _, r in sorted(rows.items())
        if (since is None or r["bucket"] + g > since) and (model is None or r["model"] == model)
    ]
    return out


def sample_rows(
    conn: sqlite3.Connection,
    since: float | None = None,
    model: str | None = None,
    limit: int = 1000,
) -> list[dict]:
    sql = "SELECT * FROM samples WHERE ts >= ?"
    args: list[float | str] = [since or 0.0]
    if model:
        sql += " AND model = ?"
        args.append(model)
    rows = conn.execute(sql + " ORDER BY ts DESC, rowid DESC LIMIT ?", (*args, limit)).fetchall()
    out = []
    for r in reversed(rows):
        row = {k: r[k] for k in SAMPLE_COLUMNS if k != "record"}
        row["ts_iso"] = iso(r["ts"])
        out.append(row)
    return out


def quota_records(conn: sqlite3.Connection, since: float) -> list[dict]:
    """What the quota book needs to be rebuilt (at a start or a reload), oldest first; the rid lets
    a rebuild tell the records it read from those it saw come in meanwhile."""
    return [
        dict(r)
        for r in conn.execute(
            "SELECT rowid AS id, rid, ts, model, lane, status, upstream_status, in_tokens, "
            "out_tokens, instance FROM samples WHERE ts > ? ORDER BY ts, rowid",
            (since,),
        )
    ]


# ---------------------------------------------------------------- the books agree after a crash
# How far before the store's newest record reconcile() still reads the log. The store is a prefix of
# the log (the JSONL line is written first, the store's row queued right after, committed in order),
# so what a crash took from the store is the log's last records, each of which ended after every
# record the store has: the margin covers only the log's small disorder (concurrent requests end in
# either order; a wall clock set back) and store batches lost to a failure that close before the
# crash. So a start reads this many seconds of log and no more, whatever the log's size (0.8 s for
# the 60,000 records of 5 minutes at 200 requests/s at the end of a 146 MB log; a few ms at a
# workstation's pace); older gaps are for `ccp db import`.
RECONCILE_MARGIN = 300.0


def _ended(rec: Mapping[str, Any]) -> float | None:
    """When a record's request ended (its start `ts` plus its latency): the log's order."""
    t = record_time(rec)
    if t is None:
        return None
    latency = rec.get("latency_ms")
    return t + latency / 1000.0 if isinstance(latency, (int, float)) else t


def log_tail(
    logs_dir: str | os.PathLike, anchor: float | None, margin: float = RECONCILE_MARGIN
) -> list[dict]:
    """The usage log's model-request records (with a rid) from its end back to `margin` before
    `anchor` (before the log's newest record, for None), oldest first: what reconcile() compares."""
    recs = []
    for rec in records_backwards(logs_dir):
        ended = _ended(rec)
        if ended is not None:
            if anchor is None:
                anchor = ended
            if ended < anchor - margin:
                break
        if rec.get("op") == CONTROL_OP or not rec.get("rid"):
            continue  # (a record without a rid could not be told from itself next time)
        recs.append(rec)
    recs.reverse()  # oldest first, as the writer would have inserted them
    return recs


def reconcile(
    path: str | os.PathLike,
    logs_dir: str | os.PathLike,
    margin: float = RECONCILE_MARGIN,
    instance: str | None = None,
) -> tuple[int, int]:
    """Import the usage log's recent records the store lacks (by rid: nothing twice); returns
    (records read, rows added). Only model-request records: control lines are never stored.

    Reads from the log's end back to RECONCILE_MARGIN before the store's newest record (before the
    log's newest, for an empty store)."""
    conn = connect(path)
    try:
        anchor = conn.execute("SELECT MAX(ts) FROM samples").fetchone()[0]
        recs = log_tail(logs_dir, anchor, margin)
        # most of them the store has: only the others become rows (INSERT OR IGNORE would skip
        # them too, after encoding each one's row; the store's rids of the span, by the ts index)
        since = min((t for t in map(record_time, recs) if t is not None), default=None)
        have = (
            {r[0] for r in conn.execute("SELECT rid FROM samples WHERE ts >= ?", (since,))}
            if since is not None
            else set()
        )
        with conn:
            added = insert_records(
                conn, [r for r in recs if r["rid"] not in have], "shim", instance
            )
    finally:
        conn.close()
    return len(recs), added


def file_size(path: str | os.PathLike) -> int:
    return sum(p.stat().st_size for p in (Path(path), Path(f"{path}-wal")) if p.exists())


def status(path: str | os.PathLike) -> dict:
    """A summary of one store file, as it is (read-only, never upgraded: an older file shows its
    version until something opens it; a newer one shows its version and why it is refused)."""
    conn = _open_readonly(path)
    try:
        version = schema_version(conn)
        if version > SCHEMA_VERSION:
            return {
                "path": str(path),
                "bytes": file_size(path),
                "schema_version": version,
                "error": str(_newer(conn, version, SCHEMA_VERSION)),
            }
        n, lo, hi = conn.execute("SELECT COUNT(*), MIN(ts), MAX(ts) FROM samples").fetchone()
        rollups = dict(
            conn.execute("SELECT granularity, COUNT(*) FROM rollups GROUP BY 1").fetchall()
        )
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        rolled = int(_meta(conn, "rolled_rowid", "0") or 0)
    finally:
        conn.close()
    return {
        "path": str(path),
        "bytes": file_size(path),
        "schema_version": version,
        "journal_mode": mode,
        "samples": n,
        "oldest": iso(lo) if lo else None,
        "newest": iso(hi) if hi else None,
        "rollups": rollups,
        "rolled_rowid": rolled,
    }


# ---------------------------------------------------------------- engines
# One interface, two engines: `CCP_STORE_URL` unset or `sqlite:///path` is the embedded file above
# (SqliteEngine, today's code and speed), `postgresql://…` one database several shims share
# (proxy.sinks.store_pg.PgEngine, psycopg 3; proxy.sinks.engines.open_engine picks one). The writer
# thread and every reader go through these methods only; the SQL helpers above stay SQLite's.
DEFAULT_QUEUE_MAX = 100_000  # CCP_STORE_QUEUE_MAX: rows waiting for the store, at most
RETRY_FIRST, RETRY_MAX = 0.05, 2.0  # the writer's backoff while a database is unreachable (seconds)
SQLITE_SCHEME = "sqlite://"
PG_SCHEMES = ("postgresql://", "postgres://")


def is_postgres(target: str | os.PathLike) -> bool:
    return str(target).startswith(PG_SCHEMES)


def shown_target(target: str | os.PathLike) -> str:
    """A store target as logs and status show it: a URL's password as ***."""
    text = str(target)
    if not is_postgres(text) or "@" not in text:
        return text
    try:
        parts = urlsplit(text)
        if parts.password is None:
            return text
        netloc = f"{parts.username or ''}:***@{parts.hostname or ''}"
        return urlunsplit(parts._replace(netloc=netloc + (f":{parts.port}" if parts.port else "")))
    except ValueError:
        return text.split("://", 1)[0] + "://?"


def sqlite_path(target: str | os.PathLike) -> str:
    """`sqlite:///abs/path` or `sqlite://rel/path` as a path; a plain path as it is."""
    text = str(target)
    return text[len(SQLITE_SCHEME) :] if text.startswith(SQLITE_SCHEME) else text


class SqliteEngine:
    """The embedded store: one WAL file (the functions above)."""

    name = "sqlite"
    errors: tuple[type[BaseException], ...] = (sqlite3.Error, OSError)
    # a batch that failed is counted and dropped (the JSONL log has it; reconcile() brings it back):
    # a full disk does not fill memory too
    keeps_failed_batches = False
    opens_later = False  # a file that cannot be opened stays off until the shim restarts

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(sqlite_path(path))
        self.where = str(self.path)

    def open_writer(self) -> sqlite3.Connection:
        conn = connect(self.path)
        try:
            # the writer only appends (rowids, rids and timestamps all grow): the pages it touches
            # are the last few of each b-tree, so a small page cache does (SQLite's default: 2 MB)
            conn.execute(f"PRAGMA cache_size=-{WRITER_CACHE_KB}")
        except BaseException:
            conn.close()
            raise
        return conn

    def insert(self, conn: sqlite3.Connection, rows: list[tuple]) -> None:
        with conn:
            insert_rows(conn, rows)

    def close_writer(self, conn: Any) -> None:
        conn.close()

    def read(self, fn, *args):
        conn = connect(self.path, readonly=True)
        try:
            return fn(conn, *args)
        finally:
            conn.close()

    def samples(self, since: float | None, model: str | None, limit: int) -> list[dict]:
        return self.read(sample_rows, since, model, limit)

    def rollups(self, granularity: str, since: float | None, model: str | None) -> list[dict]:
        return self.read(rollup_rows, granularity, since, model)

    def quota_records(self, since: float) -> list[dict]:
        return self.read(quota_records, since)

    def status(self) -> dict:
        return status(self.path)

    def reconcile(self, logs_dir: str | os.PathLike, instance: str | None) -> tuple[int, int]:
        return reconcile(self.path, logs_dir, instance=instance)

    def refresh(self, now: float, ttl_days: int) -> dict:
        conn = connect(self.path)
        try:
            rows = refresh_rollups(conn)
            pruned = prune(conn, now - ttl_days * 86400.0) if ttl_days > 0 else 0
        finally:
            conn.close()
        return {"rollup_rows": rows, "pruned": pruned}

    def size(self) -> int:
        return file_size(self.path)

    def close(self) -> None:
        pass


# ---------------------------------------------------------------- the shim's store
class UsageStore:
    """One shim's store: a writer thread fed by a queue, and read helpers for the API.

    The event loop's part of a write is small on purpose: it builds the row (from the JSONL line it
    has already encoded) and appends it to a deque. The writer thread wakes on the first row of a
    quiet moment, lets rows gather for GATHER_SECONDS, and inserts them in multi-row statements. So
    the thread holds the GIL only to bind parameters, and the loop never waits on a lock for it.

    The queue is bounded (`queue_max` rows): a record that finds it full is dropped from the store,
    counted (`ccp_store_dropped_total`), and kept by the JSONL log. A PostgreSQL store that cannot be
    reached keeps its batch and tries again with backoff (RETRY_FIRST doubling to RETRY_MAX), so an
    outage costs the client nothing and the records arrive when the database is back, once each
    (a rid is unique: a batch whose commit was cut is retried harmlessly)."""

    def __init__(
        self,
        path: str | os.PathLike,
        ttl_days: int = 7,
        metrics: Metrics | None = None,
        health: SinkHealth | None = None,
        instance: str | None = None,
        queue_max: int = DEFAULT_QUEUE_MAX,
        engine: Any = None,
    ) -> None:
        if engine is None:
            if is_postgres(path):
                raise ValueError(
                    "a PostgreSQL store is opened with its engine: "
                    "UsageStore(url, engine=proxy.sinks.engines.open_engine(url))"
                )
            engine = SqliteEngine(path)
        self.engine = engine
        self.where = self.engine.where
        self.path = Path(self.where) if self.engine.name == "sqlite" else self.where
        self.ttl_days = ttl_days
        self.metrics = metrics
        self.instance = instance
        self.queue_max = queue_max
        self.health = health if health is not None else SinkHealth(STORE, metrics)
        if not self.health.where:
            self.health.where = self.where
        self._unusable: str | None = None  # why the store could not be opened (for good)
        self.written = 0
        self.errors = 0
        self.dropped = 0  # records refused because the queue was full
        self.retries = 0  # batches tried again after a failure (PostgreSQL)
        self._rows: deque = deque()  # append (the loop) and popleft (the writer) are thread-safe
        self._held = 0  # rows of a failed batch the writer holds for its next try
        self._room = queue_max  # queue_max less what the writer holds (one compare in write())
        self._queued = 0  # rows appended, ever (only write() changes it)
        self._handled = 0  # rows committed or counted as errors (only the writer changes it)
        self._wake = threading.Event()
        self._stop = False
        self._stopping = threading.Event()  # cuts a retry's backoff short
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._opened = threading.Event()
        if metrics is not None:
            metrics.store_queue.set_function(lambda: self.queued)

    @property
    def degraded(self) -> str | None:
        """Why the store is not being written now (could not open, or the last write failed)."""
        return self._unusable or self.health.degraded

    @property
    def queued(self) -> int:
        """Rows waiting for the store now (queued, and a failed batch held for its next try)."""
        return len(self._rows) + self._held

    # -- writing
    def start(self, timeout: float = 10.0) -> bool:
        """Start the writer thread; True when the store is open for writing."""
        self._thread = threading.Thread(target=self._run, name="ccp-store", daemon=True)
        self._thread.start()
        self._opened.wait(timeout)
        return self.degraded is None

    def write(
        self, rec: Mapping[str, Any], source: str = "shim", line: bytes | None = None
    ) -> None:
        """Queue one record (never blocks); counted as an error when the store is degraded.
        `line` is the record's JSONL line, when the caller has it."""
        if self._unusable is not None or self._thread is None:
            self._count_errors(1)
            return
        rows = self._rows
        if len(rows) >= self._room:
            self.dropped += 1
            if self.metrics is not None:
                self.metrics.store_dropped.inc()
            return
        rows.append(sample_row(rec, source, line, self.instance))
        self._queued += 1
        if not self._wake.is_set():
            self._wake.set()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every queued record is committed (or dropped); False on timeout."""
        deadline = time.monotonic() + timeout
        target = self._queued
        with self._cond:
            while self._handled < target and self._thread is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def close(self, timeout: float = 10.0, refresh_at: float | None = None) -> None:
        """Stop the writer (what is queued is written first); with `refresh_at`, refresh the
        rollups once more (the shim's stop); then close the engine's readers."""
        if self._thread is not None:
            self._stop = True
            self._stopping.set()
            self._wake.set()
            self._thread.join(timeout)
            self._thread = None
        try:
            if refresh_at is not None and self.degraded is None:
                try:
                    self.refresh(refresh_at)
                except self.engine.errors as exc:
                    log.warning("usage store rollup failed: %s: %s", type(exc).__name__, exc)
        finally:
            self.engine.close()

    def _count_errors(self, n: int, exc: BaseException | None = None) -> None:
        """`n` records the store could not keep; `exc` the reason, when this is where it failed
        (a record refused because the store never opened was said once, when it did not)."""
        self.errors += n
        if self.metrics is not None:
            self.metrics.store_write_errors.inc(n)
        self.health.failed(exc, n)

    def _done(self, n: int) -> None:
        with self._cond:
            self._handled += n
            self._cond.notify_all()

    def _take(self) -> list[tuple]:
        rows = self._rows
        return [rows.popleft() for _ in range(len(rows))]

    def _open(self):
        try:
            return self.engine.open_writer()
        except self.engine.errors as exc:
            if not self.engine.opens_later:
                self._unusable = f"cannot open: {type(exc).__name__}: {exc}"
            self.health.failed(exc, 0)  # said before start() returns
            return None

    def _run(self) -> None:
        conn = self._open()
        self._opened.set()
        if conn is None and not self.engine.opens_later:
            self._drain_failed()
            return
        pending: list[tuple] = []  # a batch that failed, to be tried again (PostgreSQL)
        delay = RETRY_FIRST
        try:
            backlog = False
            while True:
                if not pending:
                    self._wake.wait()
                    # gather for a moment: one commit per busy moment, not one per record; asleep,
                    # not woken by every record that comes in meanwhile (each wake-up is a GIL
                    # hand-over with the event loop). A large batch left more behind: no wait then.
                    if not backlog and not self._stop:
                        time.sleep(GATHER_SECONDS)
                self._wake.clear()  # before taking: a row appended after this wakes us again
                batch = pending + self._take()
                backlog = len(batch) >= BATCH
                if batch:
                    if conn is None:
                        conn = self._open()
                    pending = self._commit(conn, batch) if conn is not None else batch
                    self._held = len(pending)
                    self._room = self.queue_max - self._held
                    if pending and conn is not None:
                        self.engine.close_writer(conn)
                        conn = None
                    if pending:
                        if self._stop:  # the shim stops with the database away: JSONL has them
                            self._held = 0
                            self._room = self.queue_max
                            self._count_errors(len(pending))
                            self._done(len(pending))
                            return
                        self.retries += 1
                        self._stopping.wait(delay)  # a backoff, cut short by close()
                        delay = min(RETRY_MAX, delay * 2)
                        continue
                    delay = RETRY_FIRST
                if self._stop and not self._rows:
                    return
        finally:
            if conn is not None:
                self.engine.close_writer(conn)

    def _commit(self, conn: Any, batch: list[tuple]) -> list[tuple]:
        """Write one batch; returns what is left to try again ([] when written or given up)."""
        try:
            self.engine.insert(conn, batch)
        except self.engine.errors as exc:
            if self.engine.keeps_failed_batches:
                self.health.failed(exc, 0)
                return batch
            # the batch is lost to the store (the JSONL log has it, and the next start's
            # reconcile() brings back what is recent); the next batch tries again
            self._count_errors(len(batch), exc)
            self._done(len(batch))
            return []
        if self.health.degraded is not None:
            self.health.ok()
        self.written += len(batch)
        if self.metrics is not None:
            self.metrics.store_writes.inc(len(batch))
        self._done(len(batch))
        return []

    def _drain_failed(self) -> None:
        """After a failed open: whatever was queued is counted, never kept (later writes see the
        store unusable and count themselves)."""
        rows = self._take()
        if rows:
            self._count_errors(len(rows))
        self._done(len(rows))

    # -- reading and maintenance (run these in a thread: asyncio.to_thread)
    def read(self, fn, *args):
        """`fn(conn, *args)` on a read-only connection of its own (e.g. `usage_summary`)."""
        return self.engine.read(fn, *args)

    def samples(
        self, since: float | None = None, model: str | None = None, limit: int = 1000
    ) -> list[dict]:
        return self.engine.samples(since, model, limit)

    def rollups(
        self, granularity: str, since: float | None = None, model: str | None = None
    ) -> list[dict]:
        return self.engine.rollups(granularity, since, model)

    def quota_records(self, since: float) -> list[dict]:
        return self.engine.quota_records(since)

    def reconcile(self, logs_dir: str | os.PathLike) -> tuple[int, int]:
        return self.engine.reconcile(logs_dir, self.instance)

    def status(self) -> dict:
        out = self.engine.status() if self.degraded is None else {"path": self.where}
        out.update(
            engine=self.engine.name,
            instance=self.instance,
            degraded=self.degraded,
            written=self.written,
            write_errors=self.errors,
            queued=self.queued,
            dropped=self.dropped,
        )
        return out

    def refresh(self, now: float) -> dict:
        """Refresh the rollups, prune old samples, update the size gauge."""
        t0 = time.perf_counter()
        out = self.engine.refresh(now, self.ttl_days)
        took = time.perf_counter() - t0
        if self.metrics is not None:
            self.metrics.store_rollup.observe(took)
            self.metrics.store_bytes.set(self.engine.size())
        return {**out, "seconds": round(took, 6)}


async def rollup_loop(store: UsageStore, interval: float, clock=time.time) -> None:
    """The background task: refresh the rollups every `interval` seconds, in a thread."""
    while True:
        await asyncio.sleep(interval)
        if store.degraded is not None:
            continue
        try:
            await asyncio.to_thread(store.refresh, clock())
        except store.engine.errors as exc:
            log.warning("usage store rollup failed: %s: %s", type(exc).__name__, exc)
