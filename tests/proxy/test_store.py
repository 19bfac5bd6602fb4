import asyncio
import sqlite3

import pytest

from proxy.metrics import Metrics
from proxy.store import (UsageStore, connect, prune, quota_records, refresh_rollups, rollup_loop,
                         rollup_rows, sample_rows, status)
from proxy.usage import utc_timestamp

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
    from proxy.store import insert_records
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
    from proxy.store import insert_records
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
    from proxy.store import ROWS_PER_INSERT, SAMPLE_COLUMNS, insert_records, sample_row
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

    from proxy.usage import UsageWriter
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
