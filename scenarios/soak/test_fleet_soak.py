"""The fleet soak (`ccp soak --fleet`, harness.fleet_soak) on mocks: three real shims on one real
PostgreSQL store under a round-robin load, one shim SIGKILLed and restarted in the middle, the
database stopped and started later; the load never pauses. Judged from the files and the store
themselves, not from what the soak counted: every answer the load generator got and every line of
each shim's usage.jsonl is one row of the store, under the shim that wrote it, and nothing else is.

Skipped with one line when PostgreSQL is not installed (harness.postgres)."""
import json
from collections import Counter

import psycopg
import pytest

from harness.fleet_soak import KILLED, FleetSoak, instance_name
from harness.postgres import SKIP_REASON, find_bin_dir

pytestmark = [pytest.mark.soak, pytest.mark.store]

REQUESTS = 200  # 50 answers per phase (before the kill, after the restart, database away, back)


def jsonl(folder) -> list[dict]:
    """The model-request records of one shim's usage.jsonl, read line by line here."""
    lines = (folder / "usage.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, filter(None, lines)) if r.get("op") != "control" and r.get("rid")]


def test_a_shim_kill_and_a_database_restart_under_load_lose_and_duplicate_no_record(tmp_path):
    if find_bin_dir() is None:
        pytest.skip(SKIP_REASON)
    soak = FleetSoak(tmp_path / "fleet", REQUESTS, clients=4)
    try:
        soak.setup()
        first_pid = soak.shims[KILLED].proc.pid
        soak.run()
        # the store, read here: every row, while the server still runs
        with psycopg.connect(soak.url) as conn:
            rows = conn.execute("SELECT rid, instance FROM samples").fetchall()
        restarted_pid = soak.shims[KILLED].proc.pid
    finally:
        soak.close()
    answered = [a["rid"] for a in soak.load.answers]
    logs = {instance_name(i): jsonl(tmp_path / "fleet" / instance_name(i)) for i in range(3)}
    logged = [r["rid"] for recs in logs.values() for r in recs]
    stored = Counter(rid for rid, _ in rows)

    # exactly once: every answer and every logged record has one row, and no row is anything else
    assert len(answered) >= REQUESTS and len(set(answered)) == len(answered)
    assert Counter(logged) == Counter(set(logged))  # no line twice, in one file or in two
    assert set(answered) <= set(logged)
    lost = (set(answered) | set(logged)) - set(stored)
    duplicated = [rid for rid, n in stored.items() if n > 1]
    assert (len(lost), len(duplicated)) == (0, 0), (sorted(lost)[:5], duplicated[:5])
    assert set(stored) == set(logged) and len(rows) == len(logged)
    # each row under the instance whose file has it
    owner = {r["rid"]: inst for inst, recs in logs.items() for r in recs}
    assert {rid: inst for rid, inst in rows} == owner

    # the chaos happened, under load
    what = {e["what"]: e for e in soak.events}
    assert list(what) == ["kill", "restart", "db_stop", "db_start"]
    assert restarted_pid != first_pid
    # the killed shim's file holds two processes' records (a rid is <process prefix>-<n>): the
    # restart kept its logs folder, so its start reconciled that file with the store
    prefixes = Counter(r["rid"].split("-")[0] for r in logs[instance_name(KILLED)])
    assert len(prefixes) == 2 and all(n > 0 for n in prefixes.values()), prefixes
    away = [a for a in soak.load.answers
            if what["db_stop"]["at_s"] + what["db_stop"]["seconds"] <= a["at_s"] <= what["db_start"]["at_s"]]
    assert len(away) >= REQUESTS // 4 - 4 and all(a["ok"] for a in away)  # answered, database away
    print(f"fleet soak: {len(answered)} answers, {len(logged)} records logged, {len(rows)} stored "
          f"{dict(Counter(inst for _, inst in rows))}; lost 0, duplicated 0; "
          f"{len(soak.load.failures)} requests sent again after a failure; kill at "
          f"{what['kill']['at_s']:.2f}s, restart {what['restart']['seconds']:.2f}s, database away "
          f"{what['db_stop']['at_s']:.2f}s-{what['db_start']['at_s']:.2f}s; reconcile: {soak.reconciled}")
