import asyncio
import time
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from proxy.config.load import load_settings
from proxy.core.errors import BadRequest
from proxy.server.app import create_app
from proxy.server.usage_api import parse_since

pytestmark = pytest.mark.quick

QUOTAS = "quotas:\n  haiku:\n    rolling: {window: 5h, tokens: 1000}\n    weekly: {tokens: 4000}\n"
ADMIN = {"authorization": "Bearer adm-123456789"}
HAIKU = "claude-haiku-4-5-20251001"


@pytest.fixture
def env(tmp_path):
    qfile = tmp_path / "quotas.yaml"
    qfile.write_text(QUOTAS)
    return {"CCP_LOGS_DIR": str(tmp_path / "logs"), "CCP_QUOTAS_FILE": str(qfile),
            "CCP_DEV_ENABLE": "1", "CCP_CONFIG_HOME": str(tmp_path / "home")}


def run(env, fn):
    async def main():
        async with TestClient(TestServer(create_app(load_settings(env)))) as client:
            return await fn(client)
    return asyncio.run(main())


def test_sim_usage_drives_warn_and_block(env):
    async def go(client):
        r = await client.post("/v1/dev/sim-usage", json={"model": HAIKU, "pct": 85})
        assert r.status == 201 and (await r.json())["state"]["warn"] is True
        usage = await (await client.get("/v1/usage")).json()
        haiku = usage["models"]["haiku"]
        assert (haiku["rolling_pct"], haiku["weekly_pct"], haiku["warn"], haiku["block"]) == (
            85.0, 21.25, True, False)
        assert haiku["eta_reset"] > 0 and haiku["warn_pct_auto"] is None
        assert usage["store"]["written"] >= 0 and usage["mode"] == "block"
        await client.post("/v1/dev/sim-usage", json={"model": HAIKU, "tokens": 200})
        usage = await (await client.get("/v1/usage")).json()
        assert usage["models"]["haiku"]["block"] is True
        samples = await (await client.get("/v1/usage/samples?since=-1h&model=" + HAIKU)).json()
        assert [s["source"] for s in samples["samples"]] == ["sim", "sim"]
        rollups = await (await client.get("/v1/usage/rollups?granularity=day")).json()
        assert rollups["rollups"][0]["tokens"] == 1050
        metrics = await (await client.get("/metrics")).text()
        assert 'ccp_quota_blocked{quota="haiku"} 1.0' in metrics
        assert "ccp_store_writes_total 2.0" in metrics
    run(env, go)
    # the sim records went to the store, never to the JSONL log
    assert "sim-usage" not in Path(env["CCP_LOGS_DIR"], "usage.jsonl").read_text()


def test_quotas_survive_a_restart(env):
    async def fill(client):
        assert (await client.post("/v1/dev/sim-usage", json={"model": HAIKU, "tokens": 900})).status == 201

    async def read(client):
        return (await (await client.get("/v1/usage")).json())["models"]["haiku"]["rolling_pct"]
    run(env, fill)
    assert run(env, read) == 90.0
    assert run({**env, "CCP_PERSIST": "0"}, read) == 0.0


def test_dev_endpoint_only_with_dev_enable(env):
    async def go(client):
        r = await client.post("/v1/dev/sim-usage", json={"model": HAIKU, "tokens": 1})
        assert r.status == 404
    run({**env, "CCP_DEV_ENABLE": "0"}, go)


def test_admin_token_guards_the_posts(env):
    async def go(client):
        assert (await client.post("/v1/quotas/reload")).status == 401
        assert (await client.post("/v1/dev/sim-usage", json={"model": HAIKU, "tokens": 1})).status == 401
        assert (await client.get("/v1/usage")).status == 200
        assert (await client.post("/v1/quotas/reload", headers=ADMIN)).status == 200
    run({**env, "CCP_ADMIN_TOKEN": "adm-123456789"}, go)


def test_reload_rejects_a_bad_file_and_keeps_the_old(env, tmp_path):
    qfile = tmp_path / "quotas.yaml"

    async def go(client):
        qfile.write_text("quotas:\n  haiku: {rolling: {window: soon, tokens: 5}}\n")
        r = await client.post("/v1/quotas/reload")
        assert r.status == 400 and "old config stays" in (await r.json())["error"]["message"]
        assert (await (await client.get("/v1/quotas")).json())["quotas"][0]["rolling"]["tokens"] == 1000
        other = tmp_path / "other.yaml"
        other.write_text("quotas:\n  sonnet: {weekly: {tokens: 7}}\n")
        r = await client.post("/v1/quotas/reload", json={"file": str(other)})
        assert r.status == 403 and "not a quotas file" in (await r.json())["error"]["message"]
        qfile.write_text("quotas:\n  sonnet: {weekly: {tokens: 7}}\n")
        r = await client.post("/v1/quotas/reload", json={"file": str(tmp_path / "." / qfile.name)})
        body = await r.json()
        assert r.status == 200 and body["source"] == str(tmp_path / "." / qfile.name)
        quotas = await (await client.get("/v1/quotas")).json()
        assert [q["pattern"] for q in quotas["quotas"]] == ["sonnet"] and quotas["mode"] == "block"
    run(env, go)


def test_bad_queries_are_400(env):
    async def go(client):
        assert (await client.get("/v1/usage/samples?since=yesterday")).status == 400
        assert (await client.get("/v1/usage/samples?limit=x")).status == 400
        assert (await client.get("/v1/usage/rollups?granularity=week")).status == 400
        r = await client.post("/v1/dev/sim-usage", json={"model": "claude-opus-4", "pct": 50})
        assert r.status == 400 and "no quota covers" in (await r.json())["error"]["message"]
        json_type = {"content-type": "application/json"}
        assert (await client.post("/v1/dev/sim-usage", data=b"[1]", headers=json_type)).status == 400
        assert (await client.post("/v1/dev/sim-usage", data=b"[1]")).status == 415  # not JSON
    run(env, go)


def test_store_off_and_store_unwritable(env, tmp_path):
    async def off(client):
        assert (await client.get("/v1/usage/samples")).status == 404
        assert (await (await client.get("/v1/usage")).json())["store"] is None
    run({**env, "CCP_PERSIST": "0"}, off)
    (tmp_path / "file.txt").write_text("x")

    async def broken(client):
        store = (await (await client.get("/v1/usage")).json())["store"]
        assert "cannot open" in store["degraded"]
        assert (await client.post("/v1/dev/sim-usage", json={"model": HAIKU, "tokens": 5})).status == 201
        assert "ccp_store_write_errors_total 1.0" in await (await client.get("/metrics")).text()
    run({**env, "CCP_DB_PATH": str(tmp_path / "file.txt" / "ccp.sqlite3")}, broken)


def test_parse_since():
    now = 1_800_000_000.0
    assert parse_since("-1h", now) == now - 3600 and parse_since("-30m", now) == now - 1800
    assert parse_since("1700000000", now) == 1_700_000_000.0
    assert parse_since("2027-01-15T08:00:00Z", now) == 1_800_000_000.0
    assert parse_since(None, now) is None
    with pytest.raises(BadRequest):
        parse_since("soon", now)


SHORT = ("quotas:\n  haiku:\n    rolling: {window: 1h, tokens: 1000}\n"
         "    weekly: {window: 2h, tokens: 4000}\n")
LONGER = ("quotas:\n  haiku:\n    rolling: {window: 5h, tokens: 1000}\n    weekly: {tokens: 4000}\n"
          "  sonnet:\n    weekly: {tokens: 500}\n    cooldown: 1h\n")
SIMS = [{"model": HAIKU, "tokens": 200, "ago": 3 * 3600},  # older than the short book keeps
        {"model": "claude-sonnet-4-5", "tokens": 50, "lane": "anthropic", "ago": 1800},
        {"model": "claude-sonnet-4-5", "tokens": 0, "lane": "anthropic", "status": 429, "ago": 900},
        {"model": HAIKU, "tokens": 100, "ago": 1200}]


def comparable(models: dict) -> dict:
    """Quota states without the one field that moves with the clock (seconds to the reset)."""
    return {p: {k: v for k, v in st.items() if k != "eta_reset"} for p, st in models.items()}


def test_reload_rebuilds_the_book_exactly_as_a_restart(env, tmp_path):
    qfile = Path(env["CCP_QUOTAS_FILE"])
    qfile.write_text(SHORT)

    async def fill_and_reload(client):
        for body in SIMS:
            assert (await client.post("/v1/dev/sim-usage", json=body)).status == 201
        before = (await (await client.get("/v1/usage")).json())["models"]
        qfile.write_text(LONGER)
        r = await client.post("/v1/quotas/reload")
        assert r.status == 200 and (await r.json())["restored_records"] == 4
        return before, (await (await client.get("/v1/usage")).json())["models"]

    async def read(client):
        return (await (await client.get("/v1/usage")).json())["models"]
    before, reloaded = run(env, fill_and_reload)
    assert before["haiku"]["rolling_tokens"] == 100  # the 1h window, the 2h week pruned the rest
    restarted = run(env, read)  # a new shim on the same store, started with the longer file
    assert comparable(reloaded) == comparable(restarted)
    assert reloaded["haiku"]["rolling_tokens"] == 300  # the longer window counts the older record
    sonnet = reloaded["sonnet"]
    assert (sonnet["weekly_tokens"], sonnet["limit_hits"], sonnet["block"]) == (50, 1, True)
    assert abs(reloaded["sonnet"]["eta_reset"] - restarted["sonnet"]["eta_reset"]) < 60


def test_a_reload_counts_records_that_arrive_while_it_reads(env, monkeypatch):
    """One record comes in before the store is flushed (it is read and seen), one after the read
    (only the book saw it): each counts once."""
    from proxy.pipeline.state import STATE
    from proxy.server.usage_api import restore_quotas, sim_record

    async def go(client):
        state = client.server.app[STATE]
        store = state.store
        flush, read = store.flush, store.quota_records

        def arrive(tokens):
            rec = sim_record({"model": HAIKU, "tokens": tokens}, state, time.time())
            state.quotas.account(rec)
            store.write(rec, source="sim")

        def flush_after_one(timeout):
            arrive(20)
            return flush(timeout)

        def read_then_one(since):
            rows = read(since)
            arrive(3)
            return rows
        arrive(100)
        with monkeypatch.context() as patch:
            patch.setattr(store, "flush", flush_after_one)
            patch.setattr(store, "quota_records", read_then_one)
            assert await restore_quotas(state, state.quotas.config) == 3
        return await _haiku_tokens(client)
    assert run(env, go) == 123
    assert run(env, _haiku_tokens) == 123  # and a restart agrees


async def _haiku_tokens(client):
    return (await (await client.get("/v1/usage")).json())["models"]["haiku"]["rolling_tokens"]


def test_reload_without_a_store_keeps_the_history_in_memory(env):
    async def go(client):
        await client.post("/v1/dev/sim-usage", json={"model": HAIKU, "tokens": 400})
        r = await client.post("/v1/quotas/reload")
        assert (await r.json())["restored_records"] is None
        return await _haiku_tokens(client)
    assert run({**env, "CCP_PERSIST": "0"}, go) == 400


def test_summary_endpoint(env):
    async def go(client):
        await client.post("/v1/dev/sim-usage", json={"model": HAIKU, "tokens": 40})
        await client.post("/v1/dev/sim-usage", json={"model": "claude-sonnet-4-5", "tokens": 9,
                                                     "lane": "anthropic", "status": 529})
        assert (await client.get("/nope")).status == 404
        r = await client.get("/v1/usage/summary")
        assert r.status == 200
        return await r.json()
    summary = run(env, go)
    assert summary["windows"]["rolling"]["label"] == "5h"  # the quota's rolling window
    assert [(r["lane"], r["model"], r["rolling"]["requests"], r["rolling"]["errors"],
             r["week"]["tokens"]) for r in summary["rows"]] == [
        ("anthropic", "claude-sonnet-4-5", 1, 1, 9), ("zai", HAIKU, 1, 0, 40), (None, None, 0, 1, 0)]

    async def off(client):
        return (await client.get("/v1/usage/summary")).status
    assert run({**env, "CCP_PERSIST": "0"}, off) == 404


def test_reload_reads_only_the_configured_files_and_never_shows_one(env, tmp_path):
    """`{"file": …}` chooses among the shim's own quotas files: any other file of the machine is a
    403, unread; and a configured file that is not YAML is named, its text never shown."""
    secret = tmp_path / "id_rsa"
    secret.write_text("-----BEGIN KEY-----\nSECRET-LINE: [unclosed\n")
    qfile = tmp_path / "quotas.yaml"

    async def go(client):
        for path in (str(secret), str(tmp_path / "sub" / ".." / "id_rsa"), "/etc/passwd",
                     str(secret.with_name("missing.yaml"))):
            r = await client.post("/v1/quotas/reload", json={"file": path})
            text = await r.text()
            assert r.status == 403 and "SECRET" not in text and "root:" not in text, path
        qfile.write_text("quotas: [\n  SECRET-LINE: {unclosed\n")
        r = await client.post("/v1/quotas/reload", json={"file": str(qfile)})
        text = await r.text()
        assert r.status == 400 and "not valid YAML at line" in text and "SECRET" not in text
    run(env, go)


def test_reload_takes_a_files_text_sent_by_the_operators_command_and_reads_no_file(env, tmp_path):
    async def go(client):
        r = await client.post("/v1/quotas/reload", json={
            "file": "/etc/passwd", "text": "quotas: {sonnet: {weekly: {tokens: 5}}}"})
        body = await r.json()
        assert r.status == 200 and body["source"] == "/etc/passwd" and "root:" not in str(body)
        assert [q["pattern"] for q in body["quotas"]] == ["sonnet"]
        r = await client.post("/v1/quotas/reload", json={"file": "q.yaml", "text": "quotas: [\n x"})
        assert r.status == 400 and "not valid YAML at line" in await r.text()
        r = await client.post("/v1/quotas/reload", json={"text": 5})
        assert r.status == 400
    run(env, go)
