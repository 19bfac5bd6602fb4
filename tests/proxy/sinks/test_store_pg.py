"""The PostgreSQL engine on a real server (harness.postgres; skipped with one line without it)."""
import pytest

from proxy.core.record import utc_timestamp
from proxy.sinks.metrics import Metrics
from proxy.sinks.engines import open_store
from proxy.sinks.store import SchemaError, UsageStore
from proxy.sinks.store import insert_records as sqlite_insert
from proxy.sinks.store import connect as sqlite_connect
from proxy.sinks.store import rollup_rows as sqlite_rollups
from proxy.sinks.store_pg import (
    PG_MIGRATIONS,
    PG_SCHEMA_VERSION,
    PgEngine,
    connect,
    insert_records,
    prune,
    quota_records,
    reconcile,
    redact_url,
    rollup_rows,
    sample_rows,
    schema_version,
)
from proxy.sinks.usage_log import UsageWriter
from proxy.sinks.usage_summary import usage_summary

pytestmark = pytest.mark.store

T0 = 1_800_000_000.0  # on an hour boundary
H = 3600.0


def rec(rid, t, model="claude-haiku-4-5", lane="zai", n=10, status=200, latency=5.0):
    return {"ts": utc_timestamp(t), "rid": rid, "model": model, "lane": lane, "status": status,
            "in_tokens": n, "out_tokens": n, "latency_ms": latency, "op": "nonstream",
            "err_type": "upstream_5xx" if status >= 500 else None}


def test_a_new_database_is_made_at_the_latest_version(pg_url):
    conn = connect(pg_url)
    assert schema_version(conn) == PG_SCHEMA_VERSION == 3
    cols = {r[0] for r in conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'samples'")}
    assert {"rid", "instance", "upstream_model", "retries", "record"} <= cols
    conn.close()


def test_an_old_schema_opens_and_migrates_keeping_its_rows(pg_url):
    import psycopg
    with psycopg.connect(pg_url, autocommit=True) as old:  # version 1, as an older ccp left it
        for sql in PG_MIGRATIONS[0]:
            old.execute(sql)
        old.execute("INSERT INTO meta VALUES ('schema_version', '1')")
        old.execute("INSERT INTO samples (rid, ts, model, lane, in_tokens, out_tokens, source) "
                    "VALUES ('old', %s, 'claude-haiku-4-5', 'zai', 3, 4, 'shim')", (T0,))
    conn = connect(pg_url)
    assert schema_version(conn) == PG_SCHEMA_VERSION
    with conn.transaction():
        insert_records(conn, [rec("new", T0 + 1)], instance="a:1")
    rows = {r["rid"]: r for r in sample_rows(conn)}
    assert set(rows) == {"old", "new"}
    assert rows["old"]["instance"] is None and rows["new"]["instance"] == "a:1"
    conn.close()
    connect(pg_url).close()  # a second open changes nothing


def test_a_newer_schema_is_refused_naming_both_versions(pg_url):
    import psycopg
    connect(pg_url).close()
    with psycopg.connect(pg_url, autocommit=True) as c:
        c.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(SchemaError, match=f"schema version 99, newer than this ccp's {PG_SCHEMA_VERSION}"):
        connect(pg_url)


def test_inserts_are_idempotent_by_rid(pg_url):
    conn = connect(pg_url, autocommit=True)
    recs = [rec(f"r{i}", T0 + i) for i in range(600)]
    with conn.transaction():
        assert insert_records(conn, recs) == 600
    with conn.transaction():  # a retried batch, and two shims importing the same log
        assert insert_records(conn, recs[100:300] + [rec("x", T0)]) == 1
    assert conn.execute("SELECT COUNT(*) FROM samples").fetchone()[0] == 601
    conn.close()


def test_rollups_quota_records_and_the_fuel_gauge_agree_with_sqlite(pg_url, tmp_path):
    recs = ([rec(f"a{i}", T0 + i * 60, n=i) for i in range(90)]
            + [rec(f"b{i}", T0 + 2 * H + i, model="claude-sonnet-4-5", lane="anthropic",
                   status=500 if i % 3 == 0 else 200) for i in range(10)])
    lite = sqlite_connect(tmp_path / "s.sqlite3")
    with lite:
        sqlite_insert(lite, recs)
    conn = connect(pg_url, autocommit=True)
    with conn.transaction():
        insert_records(conn, recs)
    for g in ("hour", "day"):
        assert rollup_rows(conn, g) == sqlite_rollups(lite, g)
        assert rollup_rows(conn, g, since=T0 + H + 1) == sqlite_rollups(lite, g, since=T0 + H + 1)
        assert (rollup_rows(conn, g, model="claude-sonnet-4-5")
                == sqlite_rollups(lite, g, model="claude-sonnet-4-5"))
    from proxy.sinks.store import quota_records as sqlite_quota
    assert quota_records(conn, T0 + 30) == sqlite_quota(lite, T0 + 30)
    windows = {"rolling": 5 * H, "week": 7 * 86400.0}
    engine = PgEngine(pg_url)
    try:
        assert engine.read(usage_summary, T0 + 3 * H, windows) == usage_summary(
            lite, T0 + 3 * H, windows)
    finally:
        engine.close()
    lite.close()
    conn.close()


def test_pruning_moves_samples_into_the_rollups_once(pg_url):
    conn = connect(pg_url, autocommit=True)
    with conn.transaction():
        insert_records(conn, [rec(f"r{i}", T0 + i * 600, latency=float(i)) for i in range(12)])
    before = {g: rollup_rows(conn, g) for g in ("hour", "day")}
    assert prune(conn, T0 + 3 * 600 + 1) == 4  # not on a bucket boundary: buckets split
    assert prune(conn, T0 + 3 * 600 + 1) == 0
    assert {g: rollup_rows(conn, g) for g in ("hour", "day")} == before
    assert prune(conn, T0 + 99 * H) == 8
    assert {g: rollup_rows(conn, g) for g in ("hour", "day")} == before
    conn.close()


def test_reconcile_reads_its_own_instance_log_against_its_own_rows(pg_url, tmp_path):
    logs = tmp_path / "logs"
    writer = UsageWriter(logs)
    for i in range(5):
        writer.write(rec(f"mine{i}", T0 + i))
    writer.close()
    conn = connect(pg_url, autocommit=True)
    with conn.transaction():  # this shim stored 3 of them; another shim wrote much later
        insert_records(conn, [rec(f"mine{i}", T0 + i) for i in range(3)], instance="me")
        insert_records(conn, [rec("other", T0 + 10 * H)], instance="other")
    assert reconcile(conn, logs, "me") == (5, 2)
    assert reconcile(conn, logs, "me") == (5, 0)
    assert conn.execute("SELECT COUNT(*) FROM samples WHERE instance = 'me'").fetchone()[0] == 5
    conn.close()


def test_the_store_writes_through_the_engine_and_keeps_batches_while_the_server_is_away(
        make_postgres):
    server = make_postgres()
    url = server.database("outage")
    metrics = Metrics()
    store = open_store(url, metrics=metrics, instance="i1", queue_max=30)
    assert store.start()
    for i in range(20):
        store.write(rec(f"r{i}", T0 + i))
    assert store.flush(10)
    server.stop()
    for i in range(20, 70):  # 30 fit the queue while the server is away, 20 are dropped
        store.write(rec(f"r{i}", T0 + i))
    assert store.dropped == 20 == metrics.registry.get_sample_value("ccp_store_dropped_total")
    assert not store.flush(0.3) and store.degraded is not None
    server.start()
    assert store.flush(20)
    assert store.degraded is None and store.written == 50
    st = store.status()
    assert st["samples"] == 50 and st["instances"] == {"i1": 50} and st["engine"] == "postgresql"
    store.close()


def test_a_store_whose_server_is_down_at_start_writes_once_it_is_up(make_postgres):
    server = make_postgres()
    url = server.database("late")
    server.stop()
    store = open_store(url, instance="i1")
    assert not store.start(timeout=0.5)
    store.write(rec("r0", T0))
    server.start()
    assert store.flush(20) and store.written == 1
    store.close()


def test_redact_url():
    assert redact_url("postgresql://u:pw@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert redact_url("postgresql://u@h/db") == "postgresql://u@h/db"


def test_a_postgresql_url_needs_its_engine():
    with pytest.raises(ValueError, match="open_engine"):
        UsageStore("postgresql://u@h/db")


def test_the_fleet_tables_keep_a_token_hash_never_the_token_and_end_sessions_for_everyone(pg_url):
    import hashlib

    import psycopg

    from proxy.sinks.store_pg import PgEngine
    token = "sess-token-never-at-rest-01"
    h = hashlib.sha256(token.encode()).hexdigest()
    a, b = PgEngine(pg_url), PgEngine(pg_url)
    try:
        fa, fb = a.fleet("a"), b.fleet("b")
        row = fa.publish("task-sbx-1", h, "sbx", "task", T0)
        assert row["id"] == "task-sbx-1" and row["instance"] == "a"
        again = fb.publish("task-sbx-2", h, "sbx", "task", T0 + 1)  # the same token: the same one
        assert again["id"] == "task-sbx-1"
        assert fb.lookup(h)["id"] == "task-sbx-1" and fb.lookup("0" * 64) is None
        assert [r["id"] for r in fb.active()] == ["task-sbx-1"]
        assert fb.ended(["task-sbx-1", "gone"]) == ["gone"]
        assert fb.end("task-sbx-1", T0 + 2)["state"] == "ended"
        assert fa.lookup(h) is None and fa.ended(["task-sbx-1"]) == ["task-sbx-1"]
        assert fb.end("nope", T0) is None
        # registering an ended token again makes a new session
        assert fa.publish("task-sbx-3", h, "sbx", "task", T0 + 3)["id"] == "task-sbx-3"
        with psycopg.connect(pg_url) as conn:
            dump = str(conn.execute("SELECT * FROM sessions").fetchall())
        assert token not in dump and h in dump
        # cooldowns: the later end wins; expired ones are not read
        assert fa.sync_cooldowns([("haiku", "zai", T0 + 100)], T0) == [
            {"pattern": "haiku", "lane": "zai", "until": T0 + 100, "instance": "a", "set_at": T0}]
        fb.sync_cooldowns([("haiku", "zai", T0 + 50)], T0 + 1)
        assert [r["until"] for r in fb.sync_cooldowns([], T0 + 2)] == [T0 + 100]
        assert fb.sync_cooldowns([], T0 + 200) == []
        # the quota feed: the other instances' rows after the last one seen, once
        with connect(pg_url) as conn:
            with conn.transaction():
                insert_records(conn, [rec("fa1", T0 + 5)], instance="a")
                insert_records(conn, [rec("fb1", T0 + 6), rec("fb2", T0 + 7)], instance="b")
        assert [r["rid"] for r in fa.feed(T0)] == ["fb1", "fb2"] and fa.feed(T0) == []
        with connect(pg_url) as conn:
            fb.saw(quota_records(conn, T0 + 5.5))  # a full sync read up to fb2's id
        assert fb.feed(T0) == []  # fa1's id is below it
        with connect(pg_url) as conn:
            with conn.transaction():
                insert_records(conn, [rec("fa2", T0 + 8)], instance="a")
        assert [r["rid"] for r in fb.feed(T0)] == ["fa2"]
    finally:
        a.close()
        b.close()
