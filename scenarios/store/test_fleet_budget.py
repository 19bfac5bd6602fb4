"""A budget enforced fleet-wide, measured: three real shims on one PostgreSQL store, a small haiku
budget, concurrent load round-robin over the shims until every shim blocks. How far past the budget
did the fleet go? docs/deployment.md states the bound: past the request that fills the budget the
fleet admits at most the requests in flight then plus what it admits in one fleet sync (each shim
counts its own records at once and the others' at its next CCP_FLEET_SYNC feed):
`C + R × (CCP_FLEET_SYNC + lag)`. And a real 429 on one shim cools the quota down on the others
within one CCP_FLEET_SYNC (the `cooldowns` table), long before the full quota sync."""
from __future__ import annotations

import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import psycopg
import pytest

from harness.keys import lane_env
from harness.probes import http_probe
from harness.shim import ShimProcess, wait_until
from proxy.core.record import CONTROL_OP

pytestmark = [pytest.mark.store, pytest.mark.quotas]

HAIKU = "claude-haiku-4-5-20251001"
SHIMS = 3
CLIENTS = 6  # threads, each sending its requests round-robin over the shims
FLEET_SYNC = 0.25
LAG = 0.5  # the store writer's commit and the feed's query, generously (two busy cores)
QUOTAS = """quotas:
  haiku:
    rolling: {{window: 5h, tokens: {budget}}}
    weekly: {{tokens: 10000000}}
    fallback_lane: anthropic{cooldown}
"""


def start_shims(tmp_path, env, prefix):
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


def usage(shim) -> dict:
    return httpx.get(f"{shim.url}/v1/usage", timeout=5, trust_env=False).json()


def env_for(tmp_path, pg_url, mock_anthropic, mock_zai, budget, cooldown=None, **extra):
    qfile = tmp_path / "quotas.yaml"
    qfile.write_text(QUOTAS.format(budget=budget,
                                   cooldown=f"\n    cooldown: {cooldown}" if cooldown else ""))
    return {**lane_env(mock_anthropic.base_url, mock_zai.zai_base_url), "CCP_STORE_URL": pg_url,
            "CCP_QUOTAS_FILE": str(qfile), "CCP_FLEET_SYNC": f"{FLEET_SYNC}s",
            "CCP_QUOTA_SYNC": "60s", **extra}  # the full sync out of the way: the feed bounds it


def test_a_small_budget_under_round_robin_load_is_overshot_within_the_stated_bound(
        tmp_path, pg_url, mock_anthropic, mock_zai, keys):
    # the tokens of one haiku request through the mock, to size the budget in requests
    probe_env = env_for(tmp_path, pg_url, mock_anthropic, mock_zai, budget=10_000_000)
    with ShimProcess(tmp_path / "probe", {**probe_env, "CCP_PERSIST": "0"}) as one:
        res = http_probe(one.url, HAIKU, "say ok", api_key=keys["CLIENT_API_KEY"])
        assert res.ok and res.lane == "zai"
        rec = one.record_for(res.rid)
        per = rec["in_tokens"] + rec["out_tokens"]
    ideal = 40  # requests the budget holds
    budget = per * ideal
    shims = start_shims(tmp_path, env_for(tmp_path, pg_url, mock_anthropic, mock_zai, budget), "b")
    lanes: list[tuple[float, str]] = []  # (when, lane) of every answer
    errors: list[str] = []
    stop = threading.Event()

    def client(j: int) -> None:
        k = j
        while not stop.is_set():
            r = http_probe(shims[k % SHIMS].url, HAIKU, "say ok", api_key=keys["CLIENT_API_KEY"])
            if not r.ok:
                errors.append(f"{r.status} {r.error}")
                return
            lanes.append((time.monotonic(), r.lane or "?"))
            k += 1

    try:
        t0 = time.monotonic()
        threads = [threading.Thread(target=client, args=(j,), daemon=True) for j in range(CLIENTS)]
        for t in threads:
            t.start()
        try:
            # every shim blocks, and then some more answers so that nothing admitted is missed
            wait_until(lambda: errors or all(usage(s)["models"]["haiku"]["block"] for s in shims),
                       30, "every shim to block haiku")
            mark = len(lanes)
            wait_until(lambda: errors or len(lanes) >= mark + 3 * CLIENTS, 15, "answers after")
        finally:
            stop.set()
            for t in threads:
                t.join(30)
        assert not errors, errors[:3]
        elapsed = time.monotonic() - t0
        # what the shims recorded: every zai haiku request, fleet-wide, from each one's JSONL
        zai = []
        for shim in shims:
            recs = [r for r in shim.records() if r.get("op") != CONTROL_OP and r.get("rid")]
            zai += [r for r in recs if r.get("lane") == "zai"]
        admitted = len(zai)
        rate = len(lanes) / elapsed
        overshoot = admitted - math.ceil(budget / per)
        bound = CLIENTS + rate * (FLEET_SYNC + LAG)
        per_instance = {s.logs_dir.name: sum(1 for r in s.records() if r.get("lane") == "zai")
                        for s in shims}
        print(f"fleet budget: {ideal} requests' worth ({budget} tokens); admitted {admitted} on the "
              f"budgeted lane {per_instance}; overshoot {overshoot} request(s) = "
              f"{overshoot * per} tokens ({100.0 * overshoot / ideal:.0f} % of the budget); "
              f"bound C + R x (sync + lag) = {CLIENTS} + {rate:.0f}/s x {FLEET_SYNC + LAG:.2f}s = "
              f"{bound:.1f}")
        assert len(per_instance) == SHIMS and all(per_instance.values())
        assert 0 <= overshoot <= bound, (overshoot, bound, per_instance)
        # the fleet view: each instance's share of the quota's tokens (every haiku request counts,
        # the rerouted ones too), summing to the fleet's total, from any shim
        every = sum(r.get("in_tokens", 0) + r.get("out_tokens", 0) for shim in shims
                    for r in shim.records() if r.get("op") != CONTROL_OP and r.get("rid"))

        def fleet_view(shim):
            view = usage(shim)["models"]["haiku"]
            total = sum(x["rolling_tokens"] for x in view["instances"].values())
            return (set(view["instances"]) == {f"b{i}" for i in range(SHIMS)}
                    and total == view["rolling_tokens"] == every and view)

        for shim in shims:
            wait_until(lambda s=shim: fleet_view(s), 10, "the shares to add up on every shim")
    finally:
        for s in shims:
            s.stop()


def test_a_real_429_on_one_shim_cools_the_quota_down_on_the_others_within_a_fleet_sync(
        tmp_path, pg_url, mock_anthropic, mock_zai, keys):
    env = env_for(tmp_path, pg_url, mock_anthropic, mock_zai, budget=1_000_000, cooldown="10m",
                  CCP_DEV_ENABLE="1")
    shims = start_shims(tmp_path, env, "c")
    try:
        hit = httpx.post(f"{shims[0].url}/v1/dev/sim-usage", trust_env=False, timeout=5,
                         json={"model": HAIKU, "tokens": 0, "status": 429})
        assert hit.status_code == 201
        until = hit.json()["state"]["cooldown_until"]
        t0 = time.monotonic()
        for shim in shims[1:]:
            wait_until(lambda s=shim: usage(s)["models"]["haiku"]["limited"], 5, "the cooldown")
        took = time.monotonic() - t0
        print(f"a 429's cooldown reached the other shims in {took:.2f}s "
              f"(CCP_FLEET_SYNC {FLEET_SYNC}s)")
        assert took <= FLEET_SYNC + 1.0
        for shim in shims[1:]:
            st = usage(shim)["models"]["haiku"]
            assert st["block"] and abs(st["cooldown_until"] - until) < 0.01
            res = http_probe(shim.url, HAIKU, "say ok", api_key=keys["CLIENT_API_KEY"])
            assert res.ok and res.lane == "anthropic"
            assert shim.record_for(res.rid)["decision"] == "quota_block"
        with psycopg.connect(pg_url) as conn:
            rows = conn.execute("SELECT pattern, lane, instance FROM cooldowns").fetchall()
        assert rows == [("haiku", "zai", "c0")]
    finally:
        for s in shims:
            s.stop()
