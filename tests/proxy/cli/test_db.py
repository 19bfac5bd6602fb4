import csv
import io
import json

import pytest

from proxy.cli.db import db_main, merge_stores
from proxy.sinks.store import connect, rollup_rows
from tests.proxy.cli.test_usage import make_store, rec  # the same records and store

T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z




@pytest.mark.quick
def test_db_status_export_import(tmp_path):
    db = tmp_path / "x.sqlite3"
    jsonl = tmp_path / "usage.jsonl"
    jsonl.write_text("\n".join(json.dumps(rec(f"r{i}", T0 + i)) for i in range(3)) + "\nnot json\n")
    out, err = io.StringIO(), io.StringIO()
    assert db_main(["--db", str(db), "import", "--jsonl", str(jsonl)], out=out, err=err) == 0
    assert "imported 3" in out.getvalue() and "1 bad line" in out.getvalue()
    assert db_main(["--db", str(db), "import", "--jsonl", str(jsonl)], out=out, err=err) == 0
    assert "imported 0" in out.getvalue()  # by rid: nothing twice
    out = io.StringIO()
    assert db_main(["--db", str(db), "status"], out=out, err=err) == 0
    assert json.loads(out.getvalue())["samples"] == 3
    dest = tmp_path / "out.csv"
    assert db_main(["--db", str(db), "export", "--csv", str(dest)], out=out, err=err) == 0
    rows = list(csv.DictReader(io.StringIO(dest.read_text())))
    assert [r["rid"] for r in rows] == ["r0", "r1", "r2"] and rows[0]["in_tokens"] == "10"
    assert db_main(["--db", str(tmp_path / "none.sqlite3"), "status"], out=out, err=err) == 1


@pytest.mark.quick
def test_db_merge_combines_stores_with_the_api_shapes(tmp_path):
    src = tmp_path / "shims"
    (src / "a").mkdir(parents=True)
    (src / "b").mkdir()
    make_store(src / "a" / "ccp.sqlite3", [rec("a1", T0), rec("a2", T0 + 3600)])
    make_store(src / "b" / "ccp.sqlite3", [rec("b1", T0 + 5, model="claude-sonnet-4-5")])
    # one old bucket whose samples were pruned survives only as a rollup row
    conn = connect(src / "b" / "ccp.sqlite3")
    with conn:
        conn.execute("INSERT INTO rollups VALUES ('day', ?, 'claude-haiku-4-5', 'zai', 7, 0, 70, 70,"
                     " 0, 0, 28.0, 4.0)", (int(T0 - 5 * 86400) // 86400 * 86400,))
    conn.close()
    out, err = io.StringIO(), io.StringIO()
    assert db_main(["merge", str(src), "--out", str(tmp_path / "merged")], out=out, err=err) == 0
    summary = json.loads(out.getvalue())
    assert summary["samples"] == 3 and len(summary["sources"]) == 2
    merged = connect(tmp_path / "merged" / "ccp.sqlite3", readonly=True)
    days = rollup_rows(merged, "day")
    hours = rollup_rows(merged, "hour")
    merged.close()
    assert [(d["model"], d["requests"]) for d in days] == [
        ("claude-haiku-4-5", 7), ("claude-haiku-4-5", 2), ("claude-sonnet-4-5", 1)]
    assert sum(h["requests"] for h in hours) == 3
    assert set(days[0]) == set(hours[0])  # the same row shape as GET /v1/usage/rollups
    # merging a folder that holds the same store twice does not count its samples twice
    (src / "c").mkdir()
    (src / "c" / "copy.sqlite3").write_bytes((src / "a" / "ccp.sqlite3").read_bytes())
    again = merge_stores(sorted(src.rglob("*.sqlite3")), tmp_path / "m2.sqlite3")
    conn = connect(tmp_path / "m2.sqlite3", readonly=True)
    assert sum(h["requests"] for h in rollup_rows(conn, "hour")) == 3 and again["samples"] == 3
    conn.close()
    assert db_main(["merge", str(src), "--out", str(tmp_path / "merged")], out=out, err=err) == 2
    assert db_main(["merge", str(tmp_path / "empty"), "--out", str(tmp_path)], out=out, err=err) == 2


# ---------------------------------------------------------------- PostgreSQL (a real server)
@pytest.mark.store
def test_db_status_export_import_on_postgresql(pg_url, tmp_path):
    jsonl = tmp_path / "usage.jsonl"
    jsonl.write_text("\n".join(json.dumps(rec(f"r{i}", T0 + i)) for i in range(3)) + "\nnot json\n")
    out, err = io.StringIO(), io.StringIO()
    assert db_main(["--db", pg_url, "import", "--jsonl", str(jsonl)], out=out, err=err) == 0
    assert "imported 3" in out.getvalue() and "1 bad line" in out.getvalue()
    assert db_main(["--db", pg_url, "import", "--jsonl", str(jsonl)], out=out, err=err) == 0
    assert "imported 0" in out.getvalue()  # by rid: nothing twice
    out = io.StringIO()
    assert db_main(["--db", pg_url, "status"], out=out, err=err) == 0
    st = json.loads(out.getvalue())
    assert st["samples"] == 3 and st["engine"] == "postgresql" and st["schema_version"] == 3
    dest = tmp_path / "out.csv"
    assert db_main(["--db", pg_url, "export", "--csv", str(dest)], out=out, err=err) == 0
    rows = list(csv.DictReader(io.StringIO(dest.read_text())))
    assert [r["rid"] for r in rows] == ["r0", "r1", "r2"] and rows[0]["in_tokens"] == "10"


@pytest.mark.store
def test_db_migrate_moves_a_sqlite_store_into_postgresql_without_loss(pg_url, tmp_path):
    """Samples, and the rollups of samples the file pruned long ago, land in PostgreSQL; the
    command checks counts and sums itself, and the API's rollups read the same from both."""
    from proxy.sinks.store import prune, refresh_rollups
    from proxy.sinks.store_pg import connect as pg_connect
    from proxy.sinks.store_pg import rollup_rows as pg_rollups
    db = tmp_path / "ccp.sqlite3"
    old = [rec(f"old{i}", T0 - 9 * 86400 + i * 700, n=i) for i in range(30)]
    new = [rec(f"new{i}", T0 + i * 60, model="claude-sonnet-4-5" if i % 2 else "claude-haiku-4-5",
               n=i + 1) for i in range(200)]
    make_store(db, old)
    conn = connect(db)
    refresh_rollups(conn)
    assert prune(conn, T0 - 9 * 86400 + 15 * 700) == 15  # half the old day: a split bucket
    with conn:
        from proxy.sinks.store import insert_records
        insert_records(conn, new)
    lite = {g: rollup_rows(conn, g) for g in ("hour", "day")}
    conn.close()
    out, err = io.StringIO(), io.StringIO()
    assert db_main(["--db", str(db), "migrate", "--to", pg_url], out=out, err=err) == 0, err.getvalue()
    report = json.loads(out.getvalue())
    assert report["ok"] and report["samples"] == 215 and report["added"] == 215
    assert set(report["checks"]) == {"samples", "sums", "rollups"}
    pg = pg_connect(pg_url)
    assert {g: pg_rollups(pg, g) for g in ("hour", "day")} == lite
    pg.close()
    # the same file again: refused (its pruned rollups would be added twice); --force: no sample
    # is doubled
    out = io.StringIO()
    assert db_main(["--db", str(db), "migrate", "--to", pg_url], out=out, err=err) == 1
    assert "moved already" in json.loads(out.getvalue())["error"]
    out = io.StringIO()
    assert db_main(["--db", str(db), "migrate", "--to", pg_url, "--force"], out=out, err=err) == 0
    assert json.loads(out.getvalue())["added"] == 0
    assert db_main(["--db", str(db), "migrate", "--to", str(tmp_path)], out=out, err=err) == 2


def test_db_merge_moves_several_shims_stores_into_one_postgresql_store(pg_url, tmp_path):
    """A team's laptops' stores into the fleet's: every sample once (one both files hold, once),
    counts and sums checked per file; the same merge again is refused, --force adds nothing."""
    from proxy.sinks.store_pg import connect as pg_connect
    shared = rec("both", T0)
    make_store(tmp_path / "a" / "ccp.sqlite3", [rec(f"a{i}", T0 + i) for i in range(4)] + [shared])
    make_store(tmp_path / "b" / "ccp.sqlite3", [rec(f"b{i}", T0 + i) for i in range(3)] + [shared])
    out, err = io.StringIO(), io.StringIO()
    assert db_main(["merge", str(tmp_path), "--out", pg_url], out=out, err=err) == 0, err.getvalue()
    report = json.loads(out.getvalue())
    assert (report["ok"], report["stores"], report["samples"], report["added"]) == (True, 2, 9, 8)
    pg = pg_connect(pg_url)
    rids = {r[0] for r in pg.execute("SELECT rid FROM samples WHERE rid = ANY(%s)",
                                     ([f"a{i}" for i in range(4)] + [f"b{i}" for i in range(3)]
                                      + ["both"],)).fetchall()}
    pg.close()
    assert len(rids) == 8
    out = io.StringIO()
    assert db_main(["merge", str(tmp_path), "--out", pg_url], out=out, err=err) == 1  # moved already
    out = io.StringIO()
    assert db_main(["merge", str(tmp_path), "--out", pg_url, "--force"], out=out, err=err) == 0
    assert json.loads(out.getvalue())["added"] == 0
    assert db_main(["merge", str(tmp_path / "none"), "--out", pg_url], out=out, err=err) == 2
