import asyncio
import json
import sqlite3
from pathlib import Path

import pytest

from proxy.core.record import utc_timestamp
from proxy.sinks.metrics import Metrics
from proxy.sinks.store import (
    MIGRATIONS,
    SAMPLE_COLUMNS,
    SCHEMA_VERSION,
    SchemaError,
    UsageStore,
    connect,
    migrate,
    prune,
    quota_records,
    refresh_rollups,
    rollup_loop,
    rollup_rows,
    sample_rows,
    schema_version,
    status,
)

pytestmark = pytest.mark.quick

T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z, on an hour boundary
H = 3600.0


def rec(rid, t, model="claude-haiku-4-5", lane="zai", n=10, status=200, latency=5.0):
    return {"ts": utc_timestamp(t), "rid": rid, "model": model, "lane": lane, "status": status,
            "in_tokens": n, "out_tokens": n, "latency_ms": latency,
            "err_type": "upstream_5xx" if status >= 500 else None}


def sample_value(metric, name):
    return metric.registry.get_sample_value(name) or 0.0


def test_write_is_queued_and_committed_in_wal(tmp_path):
    metrics = Metrics()
    store = UsageStore(tmp_path / "db" / "ccp.sqlite3", metrics=metrics)
    assert store.start()
    for i in range(25):
        store.write(rec(f"r{i}", T0 + i))
    store.write(rec("r0", T0))  # the same rid twice is kept once
    assert store.flush(5)
    assert sample_value(metrics, "ccp_store_writes_total") == 26
    rows = store.samples(since=T0 + 20)
    assert [r["rid"] for r in rows] == ["r20", "r21", "r22", "r23", "r24"]
    assert status(store.path)["journal_mode"] == "wal" and status(store.path)["samples"] == 25
    store.close()


def test_rollups_hour_and_day_and_late_records(tmp_path):
    conn = connect(tmp_path / "s.sqlite3")
    from proxy.sinks.store import insert_records
    with conn:
        insert_records(conn, [rec("a", T0 + 10), rec("b", T0 + 20, status=503, latency=15.0),
                              rec("c", T0 + H + 5, model="claude-sonnet-4-5", lane="anthropic")])
    refresh_rollups(conn)
    hours = rollup_rows(conn, "hour")
    assert [(r["bucket"], r["model"], r["requests"], r["errors"], r["tokens"]) for r in hours] == [
        ("2027-01-15T08:00:00Z", "claude-haiku-4-5", 2, 1, 40),
        ("2027-01-15T09:00:00Z", "claude-sonnet-4-5", 1, 0, 20)]
    assert hours[0]["latency_ms_avg"] == 10.0 and hours[0]["latency_ms_max"] == 15.0
    day = rollup_rows(conn, "day")
    assert len(day) == 2 and sum(r["requests"] for r in day) == 3
    # a long stream recorded after the refresh lands in its (old) bucket, seen before the next refresh
    with conn:
        insert_records(conn, [rec("late", T0 + 30)])
    assert rollup_rows(conn, "hour")[0]["requests"] == 3
    refresh_rollups(conn)
    assert rollup_rows(conn, "hour", model="claude-haiku-4-5")[0]["requests"] == 3
    assert rollup_rows(conn, "hour", since=T0 + H)[0]["model"] == "claude-sonnet-4-5"
    with pytest.raises(ValueError):
        rollup_rows(conn, "minute")


def test_prune_keeps_rollups_and_only_rolled_samples(tmp_path):
    conn = connect(tmp_path / "s.sqlite3")
    from proxy.sinks.store import insert_records
    with conn:
        insert_records(conn, [rec("old", T0), rec("new", T0 + 10 * 86400)])
    assert prune(conn, T0 + 86400) == 0  # nothing rolled up yet: nothing pruned
    refresh_rollups(conn)
    assert prune(conn, T0 + 86400) == 1
    assert [r["rid"] for r in sample_rows(conn)] == ["new"]
    assert sum(r["requests"] for r in rollup_rows(conn, "day")) == 2
    assert [r["ts"] for r in quota_records(conn, T0)] == [T0 + 10 * 86400]


def test_unwritable_path_degrades_with_one_log_line(tmp_path, caplog):
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    metrics = Metrics()
    store = UsageStore(blocker / "ccp.sqlite3", metrics=metrics)
    with caplog.at_level("ERROR", logger="ccp.store"):
        assert store.start() is False
    store.write(rec("a", T0))
    store.write(rec("b", T0))
    assert store.flush(1)
    assert store.degraded and "cannot open" in store.degraded
    assert sample_value(metrics, "ccp_store_write_errors_total") == 2
    assert len([r for r in caplog.records if r.name == "ccp.store"]) == 1
    store.close()


def test_refresh_and_rollup_loop_observe_metrics(tmp_path):
    metrics = Metrics()
    store = UsageStore(tmp_path / "ccp.sqlite3", ttl_days=1, metrics=metrics)
    store.start()
    store.write(rec("a", T0))
    store.flush()

    async def main():
        task = asyncio.create_task(rollup_loop(store, 0.01, clock=lambda: T0 + 3 * 86400))
        for _ in range(500):
            if sample_value(metrics, "ccp_store_rollup_duration_seconds_count") >= 2:
                break
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert sample_value(metrics, "ccp_store_size_bytes") > 0
    assert store.samples() == [] and store.rollups("day")[0]["requests"] == 1  # pruned, rolled
    store.close()


def test_read_only_connection_never_creates_a_store(tmp_path):
    with pytest.raises(sqlite3.OperationalError):
        connect(tmp_path / "none.sqlite3", readonly=True)
    assert not (tmp_path / "none.sqlite3").exists()


def test_insert_records_across_statements_keeps_every_column_and_skips_known_rids(tmp_path):
    from proxy.sinks.store import (
        ROWS_PER_INSERT,
        SAMPLE_COLUMNS,
        insert_records,
        sample_row,
    )
    r = dict(rec("x", T0 + 1), provider="zai", decision="to_zai", op="stream", upstream_status=200,
             cache_read_tokens=3, cache_creation_tokens=4, ttfb_ms=1.5, session="s1")
    row = dict(zip(SAMPLE_COLUMNS, sample_row(r, "import")))
    assert row == {**{k: r.get(k) for k in SAMPLE_COLUMNS}, "ts": T0 + 1, "source": "import",
                   "record": row["record"]}
    conn = connect(tmp_path / "s.sqlite3")
    n = ROWS_PER_INSERT * 2 + 7
    recs = [rec(f"r{i}", T0 + i) for i in range(n)] + [rec("r0", T0), rec(f"r{n - 1}", T0)]
    with conn:
        assert insert_records(conn, recs) == n
        assert insert_records(conn, [rec("r5", T0), rec("new", T0)]) == 1
        assert insert_records(conn, []) == 0
    assert conn.execute("SELECT COUNT(*) FROM samples").fetchone()[0] == n + 1


def test_the_record_column_is_the_jsonl_line_when_the_writer_has_it(tmp_path):
    """The shim hands the store the line it wrote to usage.jsonl: the `record` column is that text,
    and the same record without a line gets the same text."""
    import json

    from proxy.sinks.usage_log import UsageWriter
    store = UsageStore(tmp_path / "ccp.sqlite3")
    assert store.start()
    writer = UsageWriter(tmp_path)
    a, b = rec("a", T0), rec("b", T0 + 1)
    store.write(a, line=writer.write(a))
    store.write(b)
    assert store.flush(5)
    with connect(store.path) as conn:
        texts = dict(conn.execute("SELECT rid, record FROM samples").fetchall())
    lines = (tmp_path / "usage.jsonl").read_bytes().splitlines()
    assert texts["a"] == lines[0].decode() and json.loads(texts["b"]) == b
    store.close()


# ---------------------------------------------------------------- schema versions and migrations
FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "store"
V1_SCHEMA = (FIXTURES / "v1_schema.sql").read_text()  # what operators' files have (user_version 0)
V1_INSERT = ("INSERT INTO samples (rid, ts, model, lane, status, in_tokens, out_tokens, source,"
             " record) VALUES (?, ?, ?, ?, ?, ?, ?, 'shim', ?)")


def old_store(path):
    """A store file as every ccp before schema versions left it: version 1's tables, WAL,
    user_version 0; one sample whose JSON line carries the fields version 2 keeps as columns, one
    without them, one whose line is not JSON; a rollup row and the rollup watermark."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.executescript(V1_SCHEMA)
    mapped = dict(rec("mapped", T0), upstream_model="glm-4.6", retries=2)
    with conn:
        conn.execute(V1_INSERT, ("mapped", T0, mapped["model"], "zai", 200, 10, 10,
                                 json.dumps(mapped)))
        conn.execute(V1_INSERT, ("plain", T0 + 1, "claude-haiku-4-5", "zai", 200, 10, 10,
                                 json.dumps(rec("plain", T0 + 1))))
        conn.execute(V1_INSERT, ("torn", T0 + 2, "claude-haiku-4-5", "zai", 200, 1, 1,
                                 '{"rid": "to'))
        conn.execute("INSERT INTO rollups VALUES ('day', ?, 'claude-haiku-4-5', 'zai', 7, 0, 70, 70,"
                     " 0, 0, 28.0, 4.0)", (int(T0 - 5 * 86400) // 86400 * 86400,))
        conn.execute("INSERT INTO meta VALUES ('rolled_rowid', '0')")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 0
    conn.close()
    return path


def columns(conn, table="samples"):
    return [(r[1], r[2]) for r in conn.execute(f"PRAGMA table_info({table})")]


def v1_columns(table="samples"):
    conn = sqlite3.connect(":memory:")
    conn.executescript(V1_SCHEMA)
    try:
        return columns(conn, table)
    finally:
        conn.close()


def test_an_old_store_opens_at_the_latest_version_with_the_new_columns_and_its_rows(tmp_path):
    path = old_store(tmp_path / "old.sqlite3")
    conn = connect(path)
    assert SCHEMA_VERSION == 3 and schema_version(conn) == SCHEMA_VERSION
    assert {"upstream_model", "retries", "instance"} <= {name for name, _ in columns(conn)}
    rows = {r["rid"]: dict(r) for r in conn.execute("SELECT * FROM samples")}
    assert set(rows) == {"mapped", "plain", "torn"}
    # filled from the JSON line the store kept; a line without the fields, or not JSON, leaves NULL
    assert (rows["mapped"]["upstream_model"], rows["mapped"]["retries"]) == ("glm-4.6", 2)
    assert (rows["plain"]["upstream_model"], rows["plain"]["retries"]) == (None, None)
    assert (rows["torn"]["upstream_model"], rows["torn"]["retries"]) == (None, None)
    assert rows["mapped"]["in_tokens"] == 10 and rows["mapped"]["model"] == "claude-haiku-4-5"
    assert conn.execute("SELECT requests FROM rollups").fetchall()[0][0] == 7
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_new_writes_to_an_upgraded_store_fill_the_new_columns(tmp_path):
    path = old_store(tmp_path / "old.sqlite3")
    store = UsageStore(path)
    assert store.start()
    store.write(dict(rec("new", T0 + 10), upstream_model="glm-4.6", retries=1))
    assert store.flush(5)
    store.close()
    conn = connect(path, readonly=True)
    new = [s for s in sample_rows(conn) if s["rid"] == "new"]
    conn.close()
    assert [(s["upstream_model"], s["retries"]) for s in new] == [("glm-4.6", 1)]
    assert status(path)["samples"] == 4


def test_opening_a_store_twice_changes_nothing_the_second_time(tmp_path):
    def snapshot(conn):
        return ([tuple(r) for r in conn.execute("SELECT type, name, sql FROM sqlite_master")],
                [tuple(r) for r in conn.execute("SELECT * FROM samples ORDER BY rowid")],
                schema_version(conn))

    path = old_store(tmp_path / "old.sqlite3")
    connect(path).close()
    conn = sqlite3.connect(path)
    before = snapshot(conn)
    assert migrate(conn) == SCHEMA_VERSION  # nothing left to do
    conn.close()
    conn = connect(path)
    assert snapshot(conn) == before and before[2] == SCHEMA_VERSION
    conn.close()


def test_a_new_store_is_created_at_the_latest_version_with_the_upgraded_schema(tmp_path):
    fresh = connect(tmp_path / "new.sqlite3")
    upgraded = connect(old_store(tmp_path / "old.sqlite3"))
    assert schema_version(fresh) == SCHEMA_VERSION
    for table in ("samples", "rollups", "meta"):
        assert columns(fresh, table) == columns(upgraded, table)
    assert set(SAMPLE_COLUMNS) == {name for name, _ in columns(fresh)}
    fresh.close()
    upgraded.close()


def test_a_store_from_a_newer_ccp_is_refused_naming_both_versions(tmp_path, caplog):
    path = tmp_path / "future.sqlite3"
    conn = sqlite3.connect(path)
    conn.executescript(V1_SCHEMA + f"PRAGMA user_version = {SCHEMA_VERSION + 1};")
    conn.close()
    expected = f"schema version {SCHEMA_VERSION + 1}, newer than this ccp's {SCHEMA_VERSION}"
    for readonly in (False, True):
        with pytest.raises(SchemaError, match=expected):
            connect(path, readonly=readonly)
    conn = sqlite3.connect(path)  # untouched: not even switched to WAL
    assert schema_version(conn) == SCHEMA_VERSION + 1
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    conn.close()
    # the shim goes on without its store: one log line, records counted, not kept
    metrics = Metrics()
    store = UsageStore(path, metrics=metrics)
    with caplog.at_level("ERROR", logger="ccp.store"):
        assert store.start() is False
    store.write(rec("a", T0))
    assert store.flush(1)
    assert expected in store.degraded and "cannot open" in store.degraded
    assert [expected in r.getMessage() for r in caplog.records if r.name == "ccp.store"] == [True]
    assert sample_value(metrics, "ccp_store_write_errors_total") == 1
    store.close()
    summary = status(path)
    assert summary["schema_version"] == SCHEMA_VERSION + 1 and expected in summary["error"]


def test_a_migration_that_fails_half_way_leaves_the_store_at_its_old_version(tmp_path):
    path = old_store(tmp_path / "old.sqlite3")
    broken = MIGRATIONS + (("ALTER TABLE samples ADD COLUMN later TEXT",
                            "INSERT INTO no_such_table VALUES (1)"),)
    conn = sqlite3.connect(path)
    with pytest.raises(sqlite3.OperationalError, match="no_such_table"):
        migrate(conn, broken)
    conn.close()
    conn = sqlite3.connect(path)
    # all the steps were one transaction: not even version 2's columns stayed
    assert schema_version(conn) == 0
    assert columns(conn) == v1_columns()
    assert conn.execute("SELECT COUNT(*) FROM samples").fetchone()[0] == 3
    conn.close()
    conn = connect(path)  # and the real steps still apply afterwards
    assert schema_version(conn) == SCHEMA_VERSION
    conn.close()


def test_db_status_shows_the_schema_version_and_export_upgrades_an_old_store(tmp_path):
    import csv
    import io

    from proxy.cli.db import db_main
    path = old_store(tmp_path / "old.sqlite3")
    out = io.StringIO()
    assert db_main(["--db", str(path), "status"], out=out) == 0
    assert json.loads(out.getvalue())["schema_version"] == 0  # as found: status never upgrades
    dest = tmp_path / "out.csv"
    assert db_main(["--db", str(path), "export", "--csv", str(dest)], out=io.StringIO()) == 0
    rows = {r["rid"]: r for r in csv.DictReader(io.StringIO(dest.read_text()))}
    assert (rows["mapped"]["upstream_model"], rows["mapped"]["retries"]) == ("glm-4.6", "2")
    out = io.StringIO()
    assert db_main(["--db", str(path), "status"], out=out) == 0
    assert json.loads(out.getvalue())["schema_version"] == SCHEMA_VERSION


# ---------------------------------------------------------------- a disk that fills, then has room
def test_a_store_that_cannot_write_counts_says_once_and_writes_again_by_itself(tmp_path,
                                                                              monkeypatch, caplog):
    from proxy.sinks import store as store_mod
    real = store_mod.insert_rows
    full = [True]

    def insert(conn, rows):
        if full[0]:
            raise sqlite3.OperationalError("database or disk is full")
        return real(conn, rows)

    metrics = Metrics()
    store = UsageStore(tmp_path / "ccp.sqlite3", metrics=metrics)
    assert store.start()
    monkeypatch.setattr(store_mod, "insert_rows", insert)
    with caplog.at_level("INFO", logger="ccp.store"):
        for i in range(3):  # three batches, each lost
            store.write(rec(f"lost{i}", T0 + i))
            assert store.flush(5)
        assert store.degraded.startswith("OperationalError: database or disk is full")
        full[0] = False  # room again: the next batch goes in, no restart needed
        store.write(rec("kept", T0 + 10))
        assert store.flush(5)
    assert store.degraded is None
    assert [r["rid"] for r in store.samples()] == ["kept"]
    assert sample_value(metrics, "ccp_store_write_errors_total") == 3
    assert metrics.registry.get_sample_value("ccp_sink_write_errors_total", {"sink": "store"}) == 3
    lines = [r.getMessage() for r in caplog.records if r.name == "ccp.store"]
    assert len(lines) == 2 and "cannot write (OperationalError" in lines[0]
    assert "writes again" in lines[1] and "3 record(s) were lost" in lines[1]
    store.close()


# ---------------------------------------------------------------- reconcile with the usage log
def write_log(folder, recs, name="usage.jsonl"):
    from proxy.core.record import record_line
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / name, "ab") as fh:
        for r in recs:
            fh.write(record_line(r))


def stored_rids(path):
    conn = connect(path, readonly=True)
    try:
        return [r[0] for r in conn.execute("SELECT rid FROM samples ORDER BY rowid")]
    finally:
        conn.close()


def test_reconcile_imports_what_the_log_has_and_the_store_lacks_never_twice(tmp_path):
    from proxy.sinks.store import insert_records, reconcile
    logs, db = tmp_path / "logs", tmp_path / "ccp.sqlite3"
    recs = [rec(f"r{i}", T0 + i) for i in range(10)]
    control = {**rec("c1", T0 + 5.5), "op": "control"}  # not a model request: never stored
    write_log(logs, recs[:6] + [control] + recs[6:], name="usage.jsonl.1")
    write_log(logs, [rec("r10", T0 + 10)])  # the current file goes on where .1 stopped
    conn = connect(db)
    with conn:
        insert_records(conn, recs[:6])  # the store had committed these when the shim was killed
    conn.close()
    assert reconcile(db, logs) == (11, 5)
    assert sorted(stored_rids(db)) == sorted(f"r{i}" for i in range(11))
    assert stored_rids(db)[6:] == ["r6", "r7", "r8", "r9", "r10"]  # oldest first, as written
    assert reconcile(db, logs) == (11, 0)  # nothing twice
    assert len(stored_rids(db)) == 11


def test_reconcile_reads_only_the_end_of_a_big_log(tmp_path):
    from proxy.sinks.store import RECONCILE_MARGIN, insert_records, reconcile
    logs, db = tmp_path / "logs", tmp_path / "ccp.sqlite3"
    old = [rec(f"old{i}", T0 + i * 0.01) for i in range(20_000)]  # long before the store's newest
    recent = [rec(f"new{i}", T0 + 86400 + i) for i in range(10)]
    write_log(logs, old + recent)
    conn = connect(db)
    with conn:
        insert_records(conn, recent[:4])
    conn.close()
    read, added = reconcile(db, logs)
    # the store's newest is new3: the log is read back to RECONCILE_MARGIN before it, no further
    assert (read, added) == (10, 6) and RECONCILE_MARGIN < 86400
    assert not [r for r in stored_rids(db) if r.startswith("old")]


def test_reconcile_of_an_empty_store_takes_the_end_of_the_log(tmp_path):
    from proxy.sinks.store import RECONCILE_MARGIN, reconcile
    logs, db = tmp_path / "logs", tmp_path / "ccp.sqlite3"
    write_log(logs, [rec("a", T0), rec("b", T0 + 2 * RECONCILE_MARGIN), rec("c", T0 + 2 *
                                                                              RECONCILE_MARGIN + 1)])
    assert reconcile(db, logs) == (2, 2) and stored_rids(db) == ["b", "c"]
    assert reconcile(db, tmp_path / "no-logs") == (0, 0)


def test_the_queue_is_bounded_and_what_it_cannot_hold_is_counted(tmp_path):
    """A writer held up (a slow database): the queue takes CCP_STORE_QUEUE_MAX rows, the rest are
    dropped from the store and counted (the JSONL log has them); nothing waits in write()."""
    import threading
    metrics = Metrics()
    store = UsageStore(tmp_path / "ccp.sqlite3", metrics=metrics, queue_max=10)
    entered, release = threading.Event(), threading.Event()
    real_insert = store.engine.insert

    def slow_insert(conn, rows):
        entered.set()
        assert release.wait(10)
        real_insert(conn, rows)

    store.engine.insert = slow_insert
    assert store.start()
    store.write(rec("first", T0))
    assert entered.wait(5)  # the writer holds its first batch
    for i in range(15):
        store.write(rec(f"r{i}", T0 + i))
    assert store.dropped == 5 and sample_value(metrics, "ccp_store_dropped_total") == 5
    assert store.queued == 10 and sample_value(metrics, "ccp_store_queue_rows") == 10
    release.set()
    assert store.flush(5)
    assert store.written == 11 and store.queued == 0 and store.status()["dropped"] == 5
    store.close()


def test_a_store_target_is_a_url_or_a_path():
    from proxy.sinks.store import SqliteEngine, is_postgres, sqlite_path
    assert is_postgres("postgresql://u@h/db") and is_postgres("postgres://h/db")
    assert not is_postgres("/var/ccp.sqlite3")
    assert sqlite_path("sqlite:///var/ccp.sqlite3") == "/var/ccp.sqlite3"
    assert SqliteEngine("sqlite:///tmp/x.sqlite3").where == "/tmp/x.sqlite3"


def test_a_shown_target_hides_the_password():
    from proxy.sinks.store import shown_target
    assert shown_target("postgresql://u:pw@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert shown_target("postgresql://u@h/db") == "postgresql://u@h/db"
    assert shown_target("/var/ccp.sqlite3") == "/var/ccp.sqlite3"
