"""The books agree after a crash: a shim killed with SIGKILL under load, restarted on the same logs
folder, three times over. The usage log's line is written before the store's row is committed, so
a kill leaves the store short of the log's last records; the next start imports them (by rid, never
twice) before it rebuilds the quota book from the store. After each restart the store holds exactly
the log's model-request rids, and `/v1/usage` counts exactly the log's tokens."""
from __future__ import annotations

import asyncio
import os
import signal

import httpx
import pytest

from harness.keys import lane_env
from harness.shim import ShimProcess
from proxy.core.record import CONTROL_OP
from proxy.sinks.quotas import record_tokens
from proxy.sinks.store import connect

pytestmark = [pytest.mark.faults]

HAIKU, SONNET = "claude-haiku-4-5-20251001", "claude-sonnet-4-5"
QUOTAS = """quotas:
  haiku:
    rolling: {window: 5h, tokens: 100000000}
    weekly: {tokens: 1000000000}
"""
ROUNDS = 3
CONCURRENCY = 24
KILL_AFTER = 150  # answered requests per round before the kill (the others are in flight)


def stored_rids(db) -> list[str]:
    conn = connect(db, readonly=True)
    try:
        return [r[0] for r in conn.execute("SELECT rid FROM samples")]
    finally:
        conn.close()


def model_records(shim) -> list[dict]:
    return [r for r in shim.records() if r.get("op") != CONTROL_OP]


async def load_until_killed(shim: ShimProcess, keys: dict) -> int:
    """CONCURRENCY clients asking without a pause; SIGKILL once KILL_AFTER were answered, while
    the rest are in flight. Returns how many were answered."""
    answered = 0
    pid = shim.proc.pid

    async def client_loop(client: httpx.AsyncClient, n: int) -> None:
        nonlocal answered
        i = 0
        while True:
            body = {"model": HAIKU if (n + i) % 2 else SONNET, "max_tokens": 5,
                    "messages": [{"role": "user", "content": f"say ok {n} {i}"}]}
            i += 1
            try:
                r = await client.post(f"{shim.url}/v1/messages", json=body,
                                      headers={"x-api-key": keys["CLIENT_API_KEY"]})
            except httpx.HTTPError:
                return  # the shim is gone
            assert r.status_code == 200, r.text
            answered += 1
            if answered == KILL_AFTER:
                os.kill(pid, signal.SIGKILL)

    limits = httpx.Limits(max_connections=CONCURRENCY)
    async with httpx.AsyncClient(trust_env=False, timeout=10, limits=limits) as client:
        await asyncio.gather(*(client_loop(client, n) for n in range(CONCURRENCY)))
    return answered


def test_sigkill_under_load_three_times_and_the_store_and_quota_book_agree_with_the_log(
        tmp_path, mock_anthropic, mock_zai, keys):
    qfile = tmp_path / "quotas.yaml"
    qfile.write_text(QUOTAS)
    logs = tmp_path / "logs"
    env = {**lane_env(mock_anthropic.base_url, mock_zai.zai_base_url),
           "CCP_QUOTAS_FILE": str(qfile)}
    db = logs / "ccp.sqlite3"
    short_by = []  # per kill: records the log had and the store lacked, before the restart
    for _ in range(ROUNDS):
        shim = ShimProcess(logs, env, ready_path="/readyz").start()
        try:
            answered = asyncio.run(load_until_killed(shim, keys))
            assert shim.proc.wait(10) == -signal.SIGKILL
        finally:
            shim.stop()
        assert answered >= KILL_AFTER
        logged = {r["rid"] for r in model_records(shim)}
        short_by.append(len(logged - set(stored_rids(db))))

        shim = ShimProcess(logs, env, ready_path="/readyz").start()
        try:
            recs = model_records(shim)
            rids = [r["rid"] for r in recs]
            assert len(rids) == len(set(rids))  # the log: one line per request
            stored = stored_rids(db)
            assert len(stored) == len(set(stored)) and set(stored) == set(rids)
            usage = httpx.get(f"{shim.url}/v1/usage", timeout=5, trust_env=False).json()
            haiku = usage["models"]["haiku"]
            expected = sum(record_tokens(r) for r in recs if "haiku" in (r.get("model") or ""))
            assert expected > 0
            assert (haiku["rolling_tokens"], haiku["weekly_tokens"]) == (expected, expected)
        finally:
            shim.stop()  # (a clean stop: the next round starts from a store in step)
    print(f"records the store lacked after each kill (imported at restart): {short_by}")
    assert sum(short_by) > 0  # the kills did catch the store behind the log
    assert len(mock_anthropic.calls) + len(mock_zai.calls) >= ROUNDS * KILL_AFTER
