"""The usage store on PostgreSQL (`CCP_STORE_URL=postgresql://…`): one database several shims share.

The same tables as the SQLite file (samples, rollups, meta) and the same reads (samples, rollups,
quota records, the fuel gauge, status), written by the same writer thread (proxy.sinks.store.
UsageStore) through a sync psycopg 3 connection of its own, so the event loop never waits on the
database; readers take connections from a psycopg_pool pool (called in a thread, as for SQLite).

- Idempotence: `rid` is UNIQUE and every insert is `ON CONFLICT (rid) DO NOTHING`, so a batch whose
  commit was cut (the server stopped under it) is retried without a row written twice, and two
  shims importing the same log (reconcile, `ccp db import`) add each record once.
- Versions: the schema version is `meta.schema_version`; PG_MIGRATIONS[n - 1] takes a database from
  n - 1 to n, all the missing steps in one transaction under an advisory lock (three shims starting
  together upgrade it once). A newer database is refused (SchemaError), as a newer file is.
- Rollups: a bucket is what its samples sum to now (computed by one GROUP BY per read: nothing to
  keep fresh, and correct whichever shim wrote what) plus what pruned samples summed to (the
  `rollups` table). Pruning moves samples into that table in the same statement that deletes them,
  so a sample is counted once, in one place, whichever shim prunes.
- Instances: every row carries the shim that wrote it (`instance`, CCP_INSTANCE); `status` counts
  the rows of each, and a shim's reconcile() reads its own log against its own newest row.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable, Mapping
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from proxy.sinks.store import (
    GRANULARITIES,
    RECONCILE_MARGIN,
    ROLLUP_SUMS,
    SAMPLE_COLUMNS,
    SchemaError,
    _shape,
    iso,
    log_tail,
    sample_row,
    shown_target,
)

log = logging.getLogger("ccp.store")
# a psycopg connection whose rows are `Row`s (psycopg's own types say tuples: readers index by name)
Conn = Any

CONNECT_TIMEOUT = (
    5  # seconds: a database that does not answer fails the attempt, the writer retries
)
POOL_MAX = 4  # reader connections per shim
POOL_TIMEOUT = 5.0  # a read waits this long for a connection (the database away: then an error)
_LOCK_ID = 0x63637073  # "ccps": the advisory lock migrations take

PG_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: samples, rollups of pruned samples, meta (the schema version)
    (
        "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)",
        """CREATE TABLE IF NOT EXISTS samples (
  id BIGSERIAL PRIMARY KEY, rid TEXT NOT NULL UNIQUE, ts DOUBLE PRECISION NOT NULL, model TEXT,
  upstream_model TEXT, lane TEXT, provider TEXT, decision TEXT, op TEXT, status INTEGER,
  upstream_status INTEGER, err_type TEXT, retries INTEGER, in_tokens BIGINT, out_tokens BIGINT,
  cache_read_tokens BIGINT, cache_creation_tokens BIGINT, latency_ms DOUBLE PRECISION,
  ttfb_ms DOUBLE PRECISION, session TEXT, source TEXT, record TEXT)""",
        "CREATE INDEX IF NOT EXISTS samples_ts ON samples (ts)",
        """CREATE TABLE IF NOT EXISTS rollups (
  granularity TEXT NOT NULL, bucket BIGINT NOT NULL, model TEXT NOT NULL, lane TEXT NOT NULL,
  requests BIGINT, errors BIGINT, in_tokens BIGINT, out_tokens BIGINT, cache_read_tokens BIGINT,
  cache_creation_tokens BIGINT, latency_ms_sum DOUBLE PRECISION, latency_ms_max DOUBLE PRECISION,
  PRIMARY KEY (granularity, bucket, model, lane))""",
    ),
    # 2: which shim wrote a row (CCP_INSTANCE), and its newest row found fast (reconcile)
    (
        "ALTER TABLE samples ADD COLUMN IF NOT EXISTS instance TEXT",
        "CREATE INDEX IF NOT EXISTS samples_instance_ts ON samples (instance, ts)",
    ),
    # 3: the fleet's sessions (a token's sha256, never the token) and the cooldowns of real 429s
    (
        """CREATE TABLE IF NOT EXISTS sessions (
  id TEXT PRIMARY KEY, token_sha256 TEXT NOT NULL UNIQUE, sandbox_id TEXT NOT NULL,
  task_name TEXT NOT NULL, state TEXT NOT NULL DEFAULT 'active', created DOUBLE PRECISION NOT NULL,
  ended_at DOUBLE PRECISION, instance TEXT, ended_by TEXT)""",
        """CREATE TABLE IF NOT EXISTS cooldowns (
  pattern TEXT PRIMARY KEY, lane TEXT, until DOUBLE PRECISION NOT NULL, instance TEXT,
  set_at DOUBLE PRECISION)""",
    ),
)
PG_SCHEMA_VERSION = len(PG_MIGRATIONS)


def redact_url(url: str) -> str:
    """The URL with its password replaced by ***, for logs and status."""
    return shown_target(url)


# ---------------------------------------------------------------- rows and the `?` readers
class Row(tuple):
    """A row readable by position and by column name, and `dict(row)`-able (as sqlite3.Row)."""

    _index: dict[str, int]

    def __getitem__(self, key):
        if isinstance(key, str):
            return tuple.__getitem__(self, self._index[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._index)


def row_factory(cursor: Any):
    names = [c.name for c in cursor.description] if cursor.description else []
    index = {n: i for i, n in enumerate(names)}

    def make(values: Any) -> Row:
        row = Row(values)
        row._index = index
        return row

    return make


class QmarkConnection:
    """A psycopg connection that takes the SQLite readers' SQL (`?` placeholders): what
    `UsageStore.read(fn)` hands `fn`, so proxy.sinks.usage_summary reads either engine."""

    def __init__(self, conn: Conn) -> None:
        self.conn = conn

    def execute(self, sql: str, args: Iterable[Any] = ()) -> Any:
        return self.conn.execute(sql.replace("?", "%s").encode(), list(args))


# ---------------------------------------------------------------- schema
def schema_version(conn: Conn) -> int:
    if conn.execute("SELECT to_regclass('meta')").fetchone()[0] is None:
        return 0
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return int(row[0]) if row else 0


def _newer(url: str, found: int) -> SchemaError:
    return SchemaError(
        f"{redact_url(url)} has store schema version {found}, newer than this ccp's "
        f"{PG_SCHEMA_VERSION}: a newer ccp wrote it (run that one, or point CCP_STORE_URL at "
        "another database)",
        found,
        PG_SCHEMA_VERSION,
    )


def migrate(
    conn: Conn, url: str = "", migrations: tuple[tuple[str, ...], ...] = PG_MIGRATIONS
) -> int:
    """Bring the database to the latest version in one transaction, under an advisory lock (the
    version is read again once it is held); returns the version it had."""
    known = len(migrations)
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
        found = schema_version(conn)
        if found > known:
            raise _newer(url, found)
        for step in migrations[found:]:
            for sql in step:
                conn.execute(sql)
        if found < known:
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', %s) "
                "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                (str(known),),
            )
    if found < known:
        log.info("usage store %s: schema version %d -> %d", redact_url(url), found, known)
    return found


def connect(url: str, autocommit: bool = False) -> psycopg.Connection:
    """A connection to a database at PG_SCHEMA_VERSION (migrated first; SchemaError for a newer)."""
    conn = psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT, row_factory=row_factory)
    try:
        migrate(conn, url)
        conn.autocommit = autocommit
    except BaseException:
        conn.close()
        raise
    return conn


# ---------------------------------------------------------------- writes
# A batch goes in by COPY into a temporary table of the session (emptied at each commit), then one
# INSERT … SELECT … ON CONFLICT (rid) DO NOTHING: 4.5 times the rows per second of multi-row VALUES
# statements (33,000 against 7,400 on the test server), and the server does the duplicate check.
_COLS = ", ".join(SAMPLE_COLUMNS)
_STAGE = (
    "CREATE TEMP TABLE IF NOT EXISTS samples_in ON COMMIT DELETE ROWS AS "
    f"SELECT {_COLS} FROM samples WITH NO DATA"
)
_COPY = f"COPY samples_in ({_COLS}) FROM STDIN"
_MOVE = f"INSERT INTO samples ({_COLS}) SELECT {_COLS} FROM samples_in ON CONFLICT (rid) DO NOTHING"


def insert_rows(conn: Conn, rows: list[tuple]) -> int:
    """Insert `sample_row()` tuples (a rid already stored is skipped); returns rows added. Inside
    a transaction (the caller commits): the staging rows go with the commit."""
    if not rows:
        return 0
    with conn.cursor() as cur:
        cur.execute(_STAGE)
        with cur.copy(_COPY) as copy:
            for row in rows:
                copy.write_row(row)
        cur.execute(_MOVE)
        added = max(cur.rowcount, 0)
        cur.execute("TRUNCATE samples_in")  # (a caller that goes on in the same transaction)
    return added


def insert_records(
    conn: Conn,
    recs: Iterable[Mapping[str, Any]],
    source: str = "shim",
    instance: str | None = None,
) -> int:
    return insert_rows(conn, [sample_row(r, source, None, instance) for r in recs])


# ---------------------------------------------------------------- reads
def _agg(g: int) -> str:
    return f"""SELECT (floor(ts / {g}) * {g})::bigint AS bucket, COALESCE(model, '') AS model,
  COALESCE(lane, '') AS lane, COUNT(*)::bigint AS requests,
  SUM(CASE WHEN err_type IS NOT NULL OR status >= 400 THEN 1 ELSE 0 END)::bigint AS errors,
  COALESCE(SUM(in_tokens), 0)::bigint AS in_tokens,
  COALESCE(SUM(out_tokens), 0)::bigint AS out_tokens,
  COALESCE(SUM(cache_read_tokens), 0)::bigint AS cache_read_tokens,
  COALESCE(SUM(cache_creation_tokens), 0)::bigint AS cache_creation_tokens,
  COALESCE(SUM(latency_ms), 0)::float8 AS latency_ms_sum,
  COALESCE(MAX(latency_ms), 0)::float8 AS latency_ms_max"""


def rollup_rows(
    conn: Conn,
    granularity: str,
    since: float | None = None,
    model: str | None = None,
) -> list[dict]:
    """The API's rollup rows (the SQLite engine's shape): each bucket's samples now, plus what its
    pruned samples summed to."""
    if granularity not in GRANULARITIES:
        raise ValueError(f"granularity={granularity!r}: expected hour or day")
    g = GRANULARITIES[granularity]
    lo = (int(since) // g) * g if since is not None else None
    sql = _agg(g) + " FROM samples"
    args: list[Any] = []
    if lo is not None:
        sql += " WHERE ts >= %s"
        args.append(float(lo))
    rows: dict[tuple, dict] = {}
    for r in conn.execute((sql + " GROUP BY 1, 2, 3").encode(), args):
        rows[(r["bucket"], r["model"], r["lane"])] = dict(r)
    stored_sql = "SELECT * FROM rollups WHERE granularity = %s"
    stored_args: list[Any] = [granularity]
    if lo is not None:
        stored_sql += " AND bucket >= %s"
        stored_args.append(lo)
    for r in conn.execute(stored_sql.encode(), stored_args):
        key = (r["bucket"], r["model"], r["lane"])
        acc = rows.get(key)
        if acc is None:
            rows[key] = {k: r[k] for k in ("bucket", "model", "lane", *ROLLUP_SUMS)} | {
                "latency_ms_max": r["latency_ms_max"]
            }
            continue
        for k in ROLLUP_SUMS:
            acc[k] = (acc[k] or 0) + (r[k] or 0)
        acc["latency_ms_max"] = max(acc["latency_ms_max"] or 0.0, r["latency_ms_max"] or 0.0)
    return [
        _shape(r, granularity)
        for _, r in sorted(rows.items())
        if (since is None or r["bucket"] + g > since) and (model is None or r["model"] == model)
    ]


def sample_rows(
    conn: Conn,
    since: float | None = None,
    model: str | None = None,
    limit: int = 1000,
) -> list[dict]:
    sql = "SELECT * FROM samples WHERE ts >= %s"
    args: list[Any] = [since or 0.0]
    if model:
        sql += " AND model = %s"
        args.append(model)
    rows = conn.execute(
        (sql + " ORDER BY ts DESC, id DESC LIMIT %s").encode(), (*args, limit)
    ).fetchall()
    out = []
    for r in reversed(rows):
        row = {k: r[k] for k in SAMPLE_COLUMNS if k != "record"}
        row["ts_iso"] = iso(r["ts"])
        out.append(row)
    return out


def quota_records(conn: Conn, since: float) -> list[dict]:
    return [
        dict(r)
        for r in conn.execute(
            "SELECT id, rid, ts, model, lane, status, upstream_status, in_tokens, out_tokens, "
            "instance FROM samples WHERE ts > %s ORDER BY ts, id",
            (since,),
        )
    ]


def _status(conn: Conn, where: str) -> dict:
    n, lo, hi = conn.execute("SELECT COUNT(*), MIN(ts), MAX(ts) FROM samples").fetchone()
    rollups = dict(conn.execute("SELECT granularity, COUNT(*) FROM rollups GROUP BY 1").fetchall())
    instances = dict(
        conn.execute(
            "SELECT COALESCE(instance, ''), COUNT(*) FROM samples GROUP BY 1 ORDER BY 1"
        ).fetchall()
    )
    size = conn.execute(
        "SELECT pg_total_relation_size('samples') + pg_total_relation_size('rollups')"
    ).fetchone()[0]
    return {
        "path": where,
        "engine": "postgresql",
        "bytes": size,
        "schema_version": schema_version(conn),
        "samples": n,
        "oldest": iso(lo) if lo else None,
        "newest": iso(hi) if hi else None,
        "rollups": rollups,
        "instances": instances,
    }


# ---------------------------------------------------------------- maintenance
def _prune_sql() -> str:
    """One statement: delete the samples older than a time and add them to their hour and day
    rollups (so what pruning takes from `samples` the rollups keep, once)."""
    cols = "ts, model, lane, status, err_type, " + ", ".join(
        k for k in ROLLUP_SUMS if k not in ("requests", "errors", "latency_ms_sum")
    )
    cols += ", latency_ms"
    sums = ", ".join(f"{k} = rollups.{k} + EXCLUDED.{k}" for k in ROLLUP_SUMS)
    upsert = (
        " ON CONFLICT (granularity, bucket, model, lane) DO UPDATE SET "
        + sums
        + ", latency_ms_max = GREATEST(rollups.latency_ms_max, EXCLUDED.latency_ms_max)"
    )
    parts = [f"WITH gone AS (DELETE FROM samples WHERE ts < %s RETURNING {cols})"]
    for name, g in GRANULARITIES.items():
        parts.append(
            f", ins_{name} AS (INSERT INTO rollups SELECT '{name}', bucket, model, lane, "
            + ", ".join([*ROLLUP_SUMS, "latency_ms_max"])
            + f" FROM ({_agg(g)} FROM gone GROUP BY 1, 2, 3) AS a{upsert} RETURNING 1)"
        )
    return "".join(parts) + " SELECT COUNT(*) FROM gone"


PRUNE_SQL = _prune_sql()


def prune(conn: Conn, before: float) -> int:
    with conn.transaction():
        return int(conn.execute(PRUNE_SQL.encode(), (before,)).fetchone()[0])


def reconcile(
    conn: Conn,
    logs_dir: str | os.PathLike,
    instance: str | None,
    margin: float = RECONCILE_MARGIN,
) -> tuple[int, int]:
    """What proxy.sinks.store.reconcile() does, against this instance's own newest row (the other
    shims' rows say nothing about what this one's log holds)."""
    if instance is None:
        anchor = conn.execute("SELECT MAX(ts) FROM samples").fetchone()[0]
    else:
        anchor = conn.execute(
            "SELECT MAX(ts) FROM samples WHERE instance = %s", (instance,)
        ).fetchone()[0]
    recs = log_tail(logs_dir, anchor, margin)
    rids = [r["rid"] for r in recs]
    have = {r[0] for r in conn.execute("SELECT rid FROM samples WHERE rid = ANY(%s)", (rids,))}
    with conn.transaction():
        added = insert_records(conn, [r for r in recs if r["rid"] not in have], "shim", instance)
    return len(recs), added


# ---------------------------------------------------------------- the fleet: sessions, cooldowns
_SESSION_COLS = "id, sandbox_id, task_name, state, created, ended_at, instance"


def session_publish(
    conn: Conn,
    sid: str,
    token_sha256: str,
    sandbox_id: str,
    task_name: str,
    created: float,
    instance: str | None,
) -> dict:
    """Register a session fleet-wide; returns the row that holds the token's hash now: this one,
    or the active session another registration of the same token made (an ended one is replaced)."""
    with conn.transaction():
        row = conn.execute(
            f"INSERT INTO sessions (id, token_sha256, sandbox_id, task_name, state, created, "
            f"instance) VALUES (%s, %s, %s, %s, 'active', %s, %s) ON CONFLICT (token_sha256) DO "
            f"UPDATE SET id = EXCLUDED.id, sandbox_id = EXCLUDED.sandbox_id, task_name = "
            f"EXCLUDED.task_name, state = 'active', created = EXCLUDED.created, ended_at = NULL, "
            f"ended_by = NULL, instance = EXCLUDED.instance WHERE sessions.state = 'ended' "
            f"RETURNING {_SESSION_COLS}",
            (sid, token_sha256, sandbox_id, task_name, created, instance),
        ).fetchone()
        if row is None:
            row = conn.execute(
                f"SELECT {_SESSION_COLS} FROM sessions WHERE token_sha256 = %s", (token_sha256,)
            ).fetchone()
    return dict(row)


def session_by_hash(conn: Conn, token_sha256: str) -> dict | None:
    """The active session whose token hashes to this (None: no such session, or it ended)."""
    row = conn.execute(
        f"SELECT {_SESSION_COLS} FROM sessions WHERE token_sha256 = %s AND state = 'active'",
        (token_sha256,),
    ).fetchone()
    return None if row is None else dict(row)


def session_end(conn: Conn, sid: str, instance: str | None, now: float) -> dict | None:
    """Mark a session ended for the fleet; its row (None: no such session)."""
    with conn.transaction():
        row = conn.execute(
            f"UPDATE sessions SET state = 'ended', ended_at = COALESCE(ended_at, %s), "
            f"ended_by = COALESCE(ended_by, %s) WHERE id = %s RETURNING {_SESSION_COLS}",
            (now, instance, sid),
        ).fetchone()
    return None if row is None else dict(row)


def sessions_ended(conn: Conn, ids: list[str]) -> list[str]:
    """Which of these sessions are ended (or gone) in the store."""
    if not ids:
        return []
    active = {
        r[0]
        for r in conn.execute(
            "SELECT id FROM sessions WHERE id = ANY(%s) AND state = 'active'", (ids,)
        )
    }
    return [i for i in ids if i not in active]


def sessions_active(conn: Conn) -> list[dict]:
    return [
        dict(r)
        for r in conn.execute(
            f"SELECT {_SESSION_COLS} FROM sessions WHERE state = 'active' ORDER BY created"
        )
    ]


def cooldown_put(
    conn: Conn, pattern: str, lane: str | None, until: float, instance: str | None, now: float
) -> None:
    """A real 429's cooldown of a quota, for every shim (the later end wins)."""
    conn.execute(
        "INSERT INTO cooldowns (pattern, lane, until, instance, set_at) VALUES (%s, %s, %s, %s, %s) "
        "ON CONFLICT (pattern) DO UPDATE SET until = EXCLUDED.until, lane = EXCLUDED.lane, "
        "instance = EXCLUDED.instance, set_at = EXCLUDED.set_at WHERE cooldowns.until < EXCLUDED.until",
        (pattern, lane, until, instance, now),
    )


def cooldowns_active(conn: Conn, now: float) -> list[dict]:
    return [
        dict(r)
        for r in conn.execute(
            "SELECT pattern, lane, until, instance, set_at FROM cooldowns WHERE until > %s "
            "ORDER BY pattern",
            (now,),
        )
    ]


def records_after(conn: Conn, after_id: int, since: float, instance: str | None) -> list[dict]:
    """The quota records other instances wrote with an id above `after_id` (and a ts after
    `since`), in id order: what a shim feeds its book between two full quota syncs."""
    return [
        dict(r)
        for r in conn.execute(
            "SELECT id, rid, ts, model, lane, status, upstream_status, in_tokens, out_tokens, "
            "instance FROM samples WHERE id > %s AND ts > %s AND instance IS DISTINCT FROM %s "
            "ORDER BY id LIMIT %s",
            (after_id, since, instance, FEED_MAX),
        )
    ]


FEED_MAX = 20_000  # rows a feed reads at most (the rest at the next round, or the full sync)


class PgFleet:
    """What the shims of one store share besides the samples: sessions, 429 cooldowns and the quota
    feed. Every method blocks on the database (call it in a thread) and uses the engine's reader
    pool."""

    def __init__(self, engine: PgEngine, instance: str | None) -> None:
        self.engine = engine
        self.instance = instance
        self.seen_id = 0  # the highest samples.id the quota book has counted (full sync or feed)

    def saw(self, records: Iterable[Mapping[str, Any]]) -> None:
        """A full quota sync read these: the feed goes on after their highest id."""
        self.seen_id = max([self.seen_id, *(int(r.get("id") or 0) for r in records)])

    def feed(self, since: float) -> list[dict]:
        """Other instances' records written since the last feed or full sync."""
        rows = self.engine.raw(records_after, self.seen_id, since, self.instance)
        self.saw(rows)
        return rows

    def publish(self, sid, token_sha256, sandbox_id, task_name, created) -> dict:
        return self.engine.raw(
            session_publish, sid, token_sha256, sandbox_id, task_name, created, self.instance
        )

    def lookup(self, token_sha256: str) -> dict | None:
        return self.engine.raw(session_by_hash, token_sha256)

    def end(self, sid: str, now: float) -> dict | None:
        return self.engine.raw(session_end, sid, self.instance, now)

    def ended(self, ids: list[str]) -> list[str]:
        return self.engine.raw(sessions_ended, ids)

    def active(self) -> list[dict]:
        return self.engine.raw(sessions_active)

    def sync_cooldowns(self, shares: list[tuple[str, str | None, float]], now: float) -> list[dict]:
        """Write this shim's new cooldowns, read every active one (one connection)."""

        def both(conn: Conn) -> list[dict]:
            for pattern, lane, until in shares:
                cooldown_put(conn, pattern, lane, until, self.instance, now)
            return cooldowns_active(conn, now)

        return self.engine.raw(both)


# ---------------------------------------------------------------- the engine
class PgEngine:
    """The PostgreSQL engine of UsageStore (proxy.sinks.store.SqliteEngine's methods)."""

    name = "postgresql"
    errors: tuple[type[BaseException], ...] = (psycopg.Error, OSError, SchemaError)
    keeps_failed_batches = True  # a database away: the batch waits and is tried again
    opens_later = True  # … and one that is away at start is tried again too

    def __init__(self, url: str) -> None:
        self.url = url
        self.where = redact_url(url)
        self._pool: ConnectionPool | None = None
        self._lock = threading.Lock()

    # -- the writer's connection
    def open_writer(self) -> psycopg.Connection:
        return connect(self.url)

    def insert(self, conn: Conn, rows: list[tuple]) -> None:
        try:
            insert_rows(conn, rows)
            conn.commit()
        except BaseException:
            if not conn.closed:
                try:
                    conn.rollback()
                except psycopg.Error:
                    pass
            raise

    def close_writer(self, conn: Conn) -> None:
        conn.close()

    # -- readers: a pool, opened on the first read
    def pool(self) -> ConnectionPool:
        with self._lock:
            if self._pool is None:
                connect(self.url).close()  # the schema, before a reader looks for it
                pool = ConnectionPool(
                    self.url,
                    min_size=1,
                    max_size=POOL_MAX,
                    timeout=POOL_TIMEOUT,
                    kwargs={
                        "autocommit": True,
                        "connect_timeout": CONNECT_TIMEOUT,
                        "row_factory": row_factory,
                    },
                    name="ccp-store-read",
                    open=False,
                )
                pool.open()
                self._pool = pool
            return self._pool

    def raw(self, fn, *args):
        """`fn(psycopg connection, *args)` on a pooled reader connection."""
        with self.pool().connection() as conn:
            return fn(conn, *args)

    def read(self, fn, *args):
        """`fn(conn, *args)` with the SQLite readers' SQL (`?`): usage_summary and the like."""
        with self.pool().connection() as conn:
            return fn(QmarkConnection(conn), *args)

    def samples(self, since: float | None, model: str | None, limit: int) -> list[dict]:
        return self.raw(sample_rows, since, model, limit)

    def rollups(self, granularity: str, since: float | None, model: str | None) -> list[dict]:
        return self.raw(rollup_rows, granularity, since, model)

    def quota_records(self, since: float) -> list[dict]:
        return self.raw(quota_records, since)

    def status(self) -> dict:
        return self.raw(_status, self.where)

    def reconcile(self, logs_dir: str | os.PathLike, instance: str | None) -> tuple[int, int]:
        conn = connect(self.url, autocommit=True)
        try:
            return reconcile(conn, logs_dir, instance)
        finally:
            conn.close()

    def refresh(self, now: float, ttl_days: int) -> dict:
        pruned = self.raw(prune, now - ttl_days * 86400.0) if ttl_days > 0 else 0
        return {"rollup_rows": 0, "pruned": pruned}

    def size(self) -> int:
        return int(
            self.raw(
                lambda c: c.execute(
                    "SELECT pg_total_relation_size('samples') + pg_total_relation_size('rollups')"
                ).fetchone()[0]
            )
        )

    def fleet(self, instance: str | None) -> PgFleet:
        """The sessions and cooldowns this engine's shims share (proxy.pipeline.sessions)."""
        return PgFleet(self, instance)

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()


__all__ = [
    "PG_MIGRATIONS",
    "PG_SCHEMA_VERSION",
    "PgEngine",
    "PgFleet",
    "connect",
    "insert_records",
    "insert_rows",
    "migrate",
    "prune",
    "quota_records",
    "reconcile",
    "redact_url",
    "rollup_rows",
    "sample_rows",
    "schema_version",
]
