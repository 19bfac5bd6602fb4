import asyncio
import io

import httpx
import json
import threading

import pytest
from aiohttp import web

from proxy.cli.usage import (
    banner,
    db_main,
    peak_hour,
    quotas_main,
    status_main,
    status_rows,
    usage_main,
)
from proxy.config.load import load_settings
from proxy.core.record import utc_timestamp
from proxy.server.app import create_app
from proxy.sinks.store import connect, insert_records

pytestmark = pytest.mark.quick

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
        runner = web.AppRunner(create_app(load_settings()))
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
    (tmp_path / "home").mkdir()
    bad = good = tmp_path / "home" / "quotas.yaml"  # the user's quotas file: one of the shim's
    bad.write_text("quotas: {haiku: {}}")
    assert quotas_main(["reload", str(bad), "--url", live_shim], out=out, err=err) == 2
    assert "QuotaError" in err.getvalue() and "old config stays" in err.getvalue()
    other = tmp_path / "other.yaml"  # the shim reads no other file; the operator's command does
    other.write_text("quotas: {sonnet: {weekly: {tokens: 7}}}")
    refused = httpx.post(f"{live_shim}/v1/quotas/reload", json={"file": str(other)}, trust_env=False)
    assert refused.status_code == 403 and "tokens: 7" not in refused.text
    err = io.StringIO()
    assert quotas_main(["reload", str(other), "--url", live_shim], out=out, err=err) == 0
    assert f"reloaded from {other}" in out.getvalue()
    good.write_text("quotas: {sonnet: {weekly: {tokens: 5}}}")
    out = io.StringIO()
    assert quotas_main(["reload", str(good), "--url", live_shim], out=out, err=err) == 0
    assert f"reloaded from {good}" in out.getvalue()
    assert quotas_main(["reload", "--url", "http://127.0.0.1:9"], out=out, err=err) == 1


def _gauge_part(text: str) -> str:
    return text[text.index("fuel gauge"):]


def test_offline_and_online_say_the_same(live_shim, env):
    """`ccp status` / `ccp usage` against the running shim and from the store file on disk: the
    same quota states and the same fuel gauge (JSON and text)."""
    import httpx
    for body in ({"model": "claude-haiku-4-5", "tokens": 120},
                 {"model": "claude-haiku-4-5", "tokens": 7, "ago": 6 * 3600},
                 {"model": "claude-sonnet-4-5", "tokens": 30, "lane": "anthropic", "status": 529},
                 {"model": "glm-4.6", "tokens": 5, "ago": 3 * 86400}):
        assert httpx.post(f"{live_shim}/v1/dev/sim-usage", json=body,
                          trust_env=False).status_code == 201
    assert httpx.get(f"{live_shim}/nope", trust_env=False).status_code == 404

    def both(main, *args):
        online, offline = io.StringIO(), io.StringIO()
        assert main([*args, "--url", live_shim], out=online) == 0
        assert main([*args, "--url", "http://127.0.0.1:9"], out=offline) == 0
        return online.getvalue(), offline.getvalue()
    on, off = (json.loads(t) for t in both(usage_main, "--json"))
    assert "offline" not in on and off["offline"] is True
    for key in ("rows", "lanes", "total"):
        assert on["summary"][key] == off["summary"][key]
    assert [w["span_s"] for w in on["summary"]["windows"].values()] == [5 * 3600, 7 * 86400]
    strip = ("eta_reset",)
    assert {k: v for k, v in on["models"]["haiku"].items() if k not in strip} == {
        k: v for k, v in off["models"]["haiku"].items() if k not in strip}
    haiku = next(r for r in on["summary"]["rows"] if r["model"] == "claude-haiku-4-5")
    assert (haiku["rolling"]["tokens"], haiku["week"]["tokens"], haiku["week"]["requests"]) == (
        120, 127, 2)
    assert on["summary"]["total"]["week"]["errors"] == 2  # the 529 and the 404
    on_text, off_text = both(status_main)
    assert "running shim" in on_text and "offline" in off_text
    assert _gauge_part(on_text) == _gauge_part(off_text)
    import re
    assert re.search(r"^zai +claude-haiku-4-5 +1 +0 +120 +0 +2 +0 +127 +0$", on_text, re.M), on_text
    on_text, off_text = both(usage_main)
    assert _gauge_part(on_text) == _gauge_part(off_text)
    assert "  zai claude-haiku-4-5: 5h 1 req 0 err 120 in 0 out | 7d 2 req 0 err 127 in 0 out" \
        in on_text


def test_without_quotas_the_banner_is_the_fuel_gauge(env, tmp_path, monkeypatch):
    import time
    monkeypatch.setenv("CCP_QUOTAS_FILE", str(tmp_path / "none.yaml"))
    (tmp_path / "none.yaml").write_text("quotas: {}\n")
    now = time.time()
    make_store(tmp_path / "logs" / "ccp.sqlite3", [
        {**rec("a", now - 60, n=600), "op": "stream"},
        {**rec("b", now - 2 * 86400, model="claude-sonnet-4-5", n=1000), "lane": "anthropic",
         "op": "nonstream"}])
    out = io.StringIO()
    assert usage_main(["--banner", "--url", "http://127.0.0.1:9"], out=out) == 0
    assert out.getvalue() == ("ccp anthropic 5h 0 tok 0 req 7d 2.0k tok"
                              " | zai 5h 1.2k tok 1 req 7d 1.2k tok\n")
    out = io.StringIO()
    assert status_main(["--url", "http://127.0.0.1:9"], out=out) == 0
    text = out.getvalue()
    assert "quotas " in text and "quota  " not in text  # no empty quota table
    assert "fuel gauge — rolling 5h, week 7d" in text
    monkeypatch.setenv("CCP_DB_PATH", str(tmp_path / "absent.sqlite3"))
    out = io.StringIO()
    assert status_main(["--url", "http://127.0.0.1:9"], out=out) == 0
    assert "fuel gauge: unavailable (no store at" in out.getvalue()


def test_every_option_has_help(monkeypatch):
    import argparse
    import contextlib
    seen = []
    parse = argparse.ArgumentParser.parse_args

    def spy(self, *args, **kw):
        seen.append(self)
        return parse(self, *args, **kw)
    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", spy)
    for main in (status_main, usage_main, quotas_main, db_main):
        with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):
            main(["--help"])
    assert len(seen) == 4
    parsers = list(seen)
    while parsers:
        parser = parsers.pop()
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                parsers += action.choices.values()
                continue
            assert action.help, f"{parser.prog}: {action.option_strings or action.dest}"


def test_status_shows_the_fleet_total_and_each_instance_share():
    from proxy.cli.usage import fleet_rows, print_fleet
    usage = {
        "models": {"haiku": {"instances": {"a": {"rolling_tokens": 300}, "b": {"rolling_tokens": 100}}}},
        "summary": {"windows": {"rolling": {"label": "5h"}, "week": {"label": "7d"}},
                    "instances": [{"instance": "a", "rolling": {"requests": 3, "tokens": 300},
                                   "week": {"requests": 3, "tokens": 300}},
                                  {"instance": "b", "rolling": {"requests": 1, "tokens": 100},
                                   "week": {"requests": 2, "tokens": 150}}]}}
    rows = fleet_rows(usage)
    assert rows == [["a", "3 req, 300 tok", "3 req, 300 tok", "300 tok (75%)"],
                    ["b", "1 req, 100 tok", "2 req, 150 tok", "100 tok (25%)"],
                    ["fleet total", "4 req, 400 tok", "5 req, 450 tok", "400 tok"]]
    out = io.StringIO()
    print_fleet(usage, out)
    assert out.getvalue().startswith("fleet — 2 instances on one store\ninstance")
    one = {"summary": {"instances": [{"instance": None, "rolling": {}, "week": {}}]}}
    assert fleet_rows(one) == [] and fleet_rows({}) == []
