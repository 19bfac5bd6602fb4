"""The real `claude` CLI against a fleet: three real shims on one PostgreSQL store behind a
round-robin TCP balancer (harness.balancer, alternating backends per connection). The provider's
first answer is a 529 (overloaded), which the CLI retries (CLAUDE_CODE_MAX_RETRIES=2 here, where
the probes say 0) on a new connection (the shims close an idle one after
CCP_CLIENT_IDLE_TIMEOUT), so its one turn takes two requests through two shims. The turn succeeds,
and the store has one row per request the shims answered, spread over more than one instance, each
row the one its shim's JSONL has."""
from __future__ import annotations

import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from harness.balancer import RoundRobin
from harness.cli_probe import cli_env, parse_cli_output
from harness.keys import lane_env
from harness.shim import ShimProcess, wait_until
from proxy.core.record import CONTROL_OP

pytestmark = [pytest.mark.store, pytest.mark.repro]

SHIMS = 3


def test_the_cli_through_a_round_robin_balancer_over_three_shims(
        tmp_path, pg_url, mock_anthropic, mock_zai, keys, claude_bin):
    env = {**lane_env(mock_anthropic.base_url, mock_zai.zai_base_url), "CCP_STORE_URL": pg_url,
           "CCP_CLIENT_IDLE_TIMEOUT": "0.2s", "CCP_ENABLE_BACKOFF": "0"}
    mock_zai.script("status=529")  # the first haiku call (overloaded); the CLI retries it
    shims = [ShimProcess(tmp_path / f"l{i}", {**env, "CCP_INSTANCE": f"l{i}"}, ready_path="/readyz")
             for i in range(SHIMS)]
    with ThreadPoolExecutor(SHIMS) as pool:
        started = [pool.submit(s.start) for s in shims]
    try:
        for f in started:
            f.result()
        with RoundRobin([(s.host, s.port) for s in shims]) as lb:
            with tempfile.TemporaryDirectory(prefix="ccp-cli-home-") as home:
                env_cli = cli_env(lb.url, home, auth_token=keys["CLIENT_OAUTH_TOKEN"])
                env_cli["CLAUDE_CODE_MAX_RETRIES"] = "2"
                out = subprocess.run(
                    [claude_bin, "-p", "--model", "haiku",
                     "Reply with exactly: FLEET_OK and nothing else.", "--output-format", "json"],
                    env=env_cli, cwd=home, stdin=subprocess.DEVNULL, capture_output=True,
                    timeout=90)
            connections = list(lb.connections)
        data = parse_cli_output(out.stdout.decode("utf-8", errors="replace"))
        assert out.returncode == 0 and not data.get("is_error"), (out.returncode, data.get("result"))
        assert data.get("result") == "FLEET_OK"
        answered, statuses = {}, []
        for s in shims:
            for r in s.records():
                if r.get("op") != CONTROL_OP and r.get("rid"):
                    answered[r["rid"]] = s.logs_dir.name
                    statuses.append(r["status"])
        assert sorted(statuses) == [200, 529]  # the overloaded answer, then the retry's
        assert len(answered) == len(mock_zai.calls) + len(mock_anthropic.calls) >= 2

        def rows():
            with psycopg.connect(pg_url) as conn:
                return dict(conn.execute("SELECT rid, instance FROM samples").fetchall())
        stored = wait_until(lambda: (r := rows()) and len(r) >= len(answered) and r, 15,
                            f"{len(answered)} rows in the store")
        assert stored == answered  # one row per request, from the shim that answered it
        with psycopg.connect(pg_url) as conn:
            dump = str(conn.execute("SELECT * FROM samples").fetchall())
        assert keys["CLIENT_OAUTH_TOKEN"] not in dump
        print(f"claude CLI via the balancer: {len(answered)} request(s), connections per shim "
              f"{connections}, rows per instance "
              f"{ {i: list(stored.values()).count(i) for i in sorted(set(stored.values()))} }")
        assert len(set(stored.values())) > 1, (connections, stored)
    finally:
        for s in shims:
            s.stop()
