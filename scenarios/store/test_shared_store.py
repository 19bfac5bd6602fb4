"""Three real shims on one real PostgreSQL store, driven round-robin as a load balancer would, with
the official SDK. The store holds one row per request, written by the shim that answered it, and
each shim's own JSONL file holds its requests; the rollups any shim serves are the sum of the
instances'. Then the database is stopped mid-load (`pg_ctl stop -m fast`): every request is still
answered, and once it is started again every record arrives, exactly once.

Skipped with one line when PostgreSQL is not installed (harness.postgres)."""
from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import anthropic
import httpx
import psycopg
import pytest

from harness.keys import lane_env
from harness.shim import ShimProcess, wait_until
from proxy.core.record import CONTROL_OP
from proxy.sinks.quotas import record_time

pytestmark = [pytest.mark.store]

HAIKU, SONNET = "claude-haiku-4-5-20251001", "claude-sonnet-4-5"
SHIMS = 3


def start_shims(tmp_path, url, mock_anthropic, mock_zai, prefix="s"):
    """SHIMS real shims on one store, started side by side (each waits for its own /readyz)."""
    env = {**lane_env(mock_anthropic.base_url, mock_zai.zai_base_url), "CCP_STORE_URL": url}
    shims = [ShimProcess(tmp_path / f"{prefix}{i}", {**env, "CCP_INSTANCE": f"{prefix}{i}"},
                         ready_path="/readyz") for i in range(SHIMS)]
    with ThreadPoolExecutor(SHIMS) as pool:
        started = [pool.submit(s.start) for s in shims]
    try:
        for f in started:
            f.result()
    except BaseException:
        for shim in shims:
            if shim.proc is not None:
                shim.stop()
        raise
    return shims


def sdk(shim, keys):
    return anthropic.Anthropic(base_url=shim.url, api_key=keys["CLIENT_API_KEY"], max_retries=0,
                               timeout=30)


def ask(client, i: int) -> str:
    """One request; the shim's request id (the rid of its record)."""
    raw = client.messages.with_raw_response.create(
        model=HAIKU if i % 2 else SONNET, max_tokens=8,
        messages=[{"role": "user", "content": f"say ok {i}"}])
    assert raw.status_code == 200
    assert raw.parse().content
    return raw.headers["x-ccp-request-id"]


def jsonl_records(shim) -> list[dict]:
    """The model-request records of the shim's usage.jsonl (the file, not what the shim says)."""
    return [r for r in shim.records() if r.get("op") != CONTROL_OP and r.get("rid")]


def stored(url) -> list[tuple[str, str]]:
    with psycopg.connect(url) as conn:
        return [(r[0], r[1]) for r in conn.execute("SELECT rid, instance FROM samples")]


def metric(shim, name: str) -> float:
    text = httpx.get(f"{shim.url}/metrics", trust_env=False, timeout=5).text
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def test_three_shims_share_one_store_one_row_per_request_and_rollups_add_up(
        tmp_path, pg_url, mock_anthropic, mock_zai, keys):
    n = 60
    shims = start_shims(tmp_path, pg_url, mock_anthropic, mock_zai)
    clients = [sdk(s, keys) for s in shims]
    try:
        answered: dict[int, list[str]] = {i: [] for i in range(SHIMS)}
        for i in range(n):  # round-robin, as a load balancer would
            answered[i % SHIMS].append(ask(clients[i % SHIMS], i))
        every = [rid for rids in answered.values() for rid in rids]
        assert len(set(every)) == n
        # each instance's JSONL file has exactly the requests it answered
        logs = {i: wait_until(lambda s=s, k=len(answered[i]): (r := jsonl_records(s))
                              and len(r) >= k and r, 10, f"{s.usage_path}")
                for i, s in enumerate(shims)}
        for i in range(SHIMS):
            assert sorted(r["rid"] for r in logs[i]) == sorted(answered[i])
        # the store: one row per request, each carrying the instance that answered it
        rows = wait_until(lambda: (r := stored(pg_url)) and len(r) >= n and r, 15,
                          f"{n} rows in the store")
        assert len(rows) == n
        assert {rid: inst for rid, inst in rows} == {
            rid: f"s{i}" for i, rids in answered.items() for rid in rids}
        # the rollups any shim serves are the sum of the instances' JSONL records
        expected: Counter = Counter()
        for recs in logs.values():
            for r in recs:
                bucket = int(record_time(r) // 3600 * 3600)
                key = (bucket, r["model"], r["lane"])
                expected[key + ("requests",)] += 1
                expected[key + ("in_tokens",)] += r.get("in_tokens") or 0
                expected[key + ("out_tokens",)] += r.get("out_tokens") or 0
        for shim in shims:
            got: Counter = Counter()
            body = httpx.get(f"{shim.url}/v1/usage/rollups?granularity=hour", trust_env=False,
                             timeout=10).json()
            for row in body["rollups"]:
                key = (row["bucket_ts"], row["model"], row["lane"])
                for k in ("requests", "in_tokens", "out_tokens"):
                    got[key + (k,)] += row[k]
            assert got == expected
        # Prometheus scraping every instance: the writes add up to the requests
        assert sum(metric(s, "ccp_store_writes_total") for s in shims) >= n
        status = httpx.get(f"{shims[0].url}/v1/usage", trust_env=False, timeout=10).json()["store"]
        assert status["engine"] == "postgresql" and status["instances"] == {
            f"s{i}": len(answered[i]) for i in range(SHIMS)}
    finally:
        for c in clients:
            c.close()
        for s in shims:
            s.stop()


def test_postgresql_stopped_mid_load_every_request_answered_every_record_once(
        tmp_path, pg_server, mock_anthropic, mock_zai, keys):
    server = pg_server  # the session's: stopped and started again here (the finally makes sure)
    url = server.database("outage")
    shims = start_shims(tmp_path, url, mock_anthropic, mock_zai, prefix="o")
    clients = [sdk(s, keys) for s in shims]
    answered: list[tuple[float, float, str, str]] = []  # (start, seconds, phase, rid)
    errors: list[BaseException] = []
    phase = ["up"]
    stop = threading.Event()

    def load():
        i = 0
        while not stop.is_set():
            t0 = time.perf_counter()
            try:
                rid = ask(clients[i % SHIMS], i)
            except BaseException as exc:  # noqa: BLE001 - a failed request fails the test below
                errors.append(exc)
                return
            answered.append((t0, time.perf_counter() - t0, phase[0], rid))
            i += 1

    worker = threading.Thread(target=load, daemon=True)
    worker.start()
    try:
        wait_until(lambda: len(answered) >= 40 or errors, 30, "40 answers before the stop")
        server.stop()  # pg_ctl stop -m fast, under load
        phase[0] = "down"
        mark = len(answered)
        wait_until(lambda: len(answered) >= mark + 60 or errors, 30, "60 answers while it is down")
        phase[0] = "restarting"
        server.start()
        back_at = time.monotonic()
        phase[0] = "back"
        mark = len(answered)
        wait_until(lambda: len(answered) >= mark + 40 or errors, 30, "40 answers after the start")
    finally:
        stop.set()
        worker.join(30)
        if phase[0] != "back":
            server.start()
    try:
        assert not errors, errors[0]
        rids = [a[3] for a in answered]
        rows = wait_until(lambda: (r := stored(url)) and len(r) >= len(rids) and r, 30,
                          f"{len(rids)} rows once the database is back")
        caught_up = time.monotonic() - back_at
        assert sorted(r[0] for r in rows) == sorted(rids)  # every record, once (rid is unique)
        for i, shim in enumerate(shims):
            mine = sorted(r["rid"] for r in jsonl_records(shim))
            assert mine == sorted(rid for rid, inst in rows if inst == f"o{i}")
            assert metric(shim, "ccp_store_dropped_total") == 0
            assert metric(shim, "ccp_store_write_errors_total") == 0
        by_phase: dict[str, list[float]] = {}
        for _, secs, ph, _ in answered:
            by_phase.setdefault(ph, []).append(secs * 1000)
        summary = {ph: (len(v), round(sorted(v)[len(v) // 2], 2), round(max(v), 2))
                   for ph, v in by_phase.items()}
        print(f"client latency ms per phase (n, p50, max): {summary}; every row stored "
              f"{caught_up:.2f}s after the start")
        # the database away costs the client nothing it would notice: no answer waited on it
        assert max(by_phase["down"]) < 1000
    finally:
        for c in clients:
            c.close()
        for s in shims:
            s.stop()
