import asyncio
import csv
import io
import json
import threading

import pytest
from aiohttp import web

from proxy.app import create_app
from proxy.settings import Settings
from proxy.store import connect, insert_records, rollup_rows
from proxy.usage import utc_timestamp
from proxy.usage_cli import (banner, db_main, merge_stores, peak_hour, quotas_main, status_main,
                             status_rows, usage_main)

pytestmark = pytest.mark.quick

T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z
QUOTAS = "quotas:\n  haiku:\n    rolling: {window: 5h, tokens: 1000}\n    weekly: {tokens: 4000}\n"
USAGE = {"mode": "block", "models": {
    "haiku": {"rolling_pct": 85.0, "weekly_pct": 21.25, "warn": True, "block": False,
              "tokens_per_s": 2.5, "eta_reset": 3700, "warn_pct": 80.0, "warn_pct_auto": 72.0,
              "warn_pct_auto_confidence": 0.28},
    "sonnet": {"rolling_pct": None, "weekly_pct": 100.0, "warn": True, "block": True,
               "tokens_per_s": 0, "eta_reset": 90, "warn_pct": 80.0}},
    "rollups": [{"bucket": "2027-01-15T08:00:00Z", "model": "claude-haiku-4-5", "tokens": 40},
                {"bucket": "2027-01-15T09:00:00Z", "model": "claude-haiku-4-5", "tokens": 90},
                {"bucket": "2027-01-15T10:00:00Z", "model": "claude-sonnet-4-5", "tokens": 500}]}


def rec(rid, t, model="claude-haiku-4-5", n=10):
    return {"ts": utc_timestamp(t), "rid": rid, "model": model, "lane": "zai", "status": 200,
            "in_tokens": n, "out_tokens": n, "latency_ms": 4.0}


def make_store(path, recs):
    conn = connect(path)
    with conn:
        insert_records(conn, recs)
    conn.close()


@pytest.fixture
def env(tmp_path, monkeypatch):
    qfile = tmp_path / "quotas.yaml"
    qfile.write_text(QUOTAS)
    values = {"CCP_LOGS_DIR": str(tmp_path / "logs"), "CCP_QUOTAS_FILE": str(qfile),
              "CCP_CONFIG_HOME": str(tmp_path / "home"), "CCP_DEV_ENABLE": "1"}
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    return values


def test_formatting_status_banner_peak():
    rows = status_rows(USAGE)
    assert rows[0][:6] == ["haiku", "85%", "21%", "WARN", "2.5", "1h01m"]
    assert "auto 72%" in rows[0][6] and rows[0][7] == "2027-01-15 09h (90 tok)"
    assert rows[1][:4] == ["sonnet", "-", "100%", "BLOCK"] and rows[1][5] == "1m30s"
    line = banner(USAGE)
    assert "\n" not in line and line.startswith("ccp haiku ▕")
    assert "85% wk 21% WARN" in line and "sonnet" in line and "BLOCK" in line
    assert banner({"models": {}}) == "ccp no quotas configured"
    assert peak_hour("opus", USAGE["rollups"]) is None


def test_offline_status_and_usage_read_the_store(env, tmp_path):
    import time
    now = time.time()
    make_store(tmp_path / "logs" / "ccp.sqlite3", [rec("a", now - 60, n=425)])
    out = io.StringIO()
    assert status_main(["--url", "http://127.0.0.1:9"], out=out) == 0
    text = out.getvalue()
    assert "offline" in text and "haiku" in text and "85%" in text and "WARN" in text
    out = io.StringIO()
    assert usage_main(["--banner", "--url", "http://127.0.0.1:9"], out=out) == 0
    assert out.getvalue().count("\n") == 1 and "85%" in out.getvalue()
    out = io.StringIO()
    assert usage_main(["--json", "--url", "http://127.0.0.1:9"], out=out) == 0
    assert json.loads(out.getvalue())["models"]["haiku"]["rolling_pct"] == 85.0


@pytest.fixture
def live_shim(env):
    """The app served from a thread on port 0 (the CLI talks to it over real HTTP)."""
    ready, box = threading.Event(), {}
    loop = asyncio.new_event_loop()

    async def serve():
        runner = web.AppRunner(create_app(Settings.from_env()))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        box["url"] = f"http://127.0.0.1:{runner.addresses[0][1]}"
        box["runner"] = runner
        ready.set()

    thread = threading.Thread(target=lambda: (loop.run_until_complete(serve()), loop.run_forever()))
    thread.start()
    ready.wait(10)
    yield box["url"]
    asyncio.run_coroutine_threadsafe(box["runner"].cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


def test_cli_against_a_running_shim(live_shim, env, tmp_path):
    import httpx
    httpx.post(f"{live_shim}/v1/dev/sim-usage", json={"model": "claude-haiku-4-5", "pct": 50},
               trust_env=False)
    out, err = io.StringIO(), io.StringIO()
    assert status_main(["--url", live_shim], out=out) == 0
    assert "running shim" in out.getvalue() and "50%" in out.getvalue()
    assert "2027" not in out.getvalue()  # peak hour comes from the shim's own (current) rollups
    bad = tmp_path / "bad.yaml"
    bad.write_text("quotas: {haiku: {}}")
    assert quotas_main(["reload", str(bad), "--url", live_shim], out=out, err=err) == 2
    assert "QuotaError" in err.getvalue() and "old config stays" in err.getvalue()
    good = tmp_path / "good.yaml"
    good.write_text("quotas: {sonnet: {weekly: {tokens: 5}}}")
    out = io.StringIO()
    assert quotas_main(["reload", str(good), "--url", live_shim], out=out, err=err) == 0
    assert f"reloaded from {good}" in out.getvalue()
    assert quotas_main(["reload", "--url", "http://127.0.0.1:9"], out=out, err=err) == 1


def test_db_status_export_import(env, tmp_path):
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
