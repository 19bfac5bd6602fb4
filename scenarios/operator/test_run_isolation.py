"""Repro runs leave the daily shim alone: `make repro` beside a running `ccp up` writes its own usage
log, store and quota book under results/runs/, and the daily `logs/usage.jsonl`, `ccp.sqlite3` and
`/v1/usage` are exactly as they were. A repro, A/B or soak stopped with Ctrl-C (SIGINT to the whole
job, as a terminal sends it) leaves nothing running, says what it did and still records its entry in
results/TESTS.md."""
from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess

import httpx
import pytest

from harness.operator import VENV_BIN
from harness.shim import wait_until
from proxy.config.profiles import pid_alive
from scenarios.operator.conftest import send, stored

pytestmark = pytest.mark.operator


def running_in_group(pgid: int) -> list[str]:
    """The processes of a job (process group) still running; an exited one awaiting its reaper
    (state Z) has stopped."""
    out = subprocess.run(["ps", "-o", "pid=,stat=,args=", "-g", str(pgid)], capture_output=True,
                         text=True).stdout.splitlines()
    return [line for line in out if not line.split()[1].startswith("Z")]


def daily_state(op, port: int) -> dict:
    logs = op.home / "logs"
    usage = httpx.get(f"http://127.0.0.1:{port}/v1/usage", trust_env=False, timeout=10).json()
    for volatile in ("now", "ts"):
        usage.pop(volatile, None)
    con = sqlite3.connect(f"file:{logs / 'ccp.sqlite3'}?mode=ro", uri=True)
    try:
        samples = con.execute("select count(*), max(rid) from samples").fetchone()
    finally:
        con.close()
    return {"files": sorted(p.name for p in logs.iterdir()),
            "usage_log": (logs / "usage.jsonl").read_bytes(), "samples": samples, "v1_usage": usage}


def up(op) -> int:
    out = op.ccp("up", "--port", "0")
    assert out.returncode == 0, out.stderr
    return int(re.match(r"^ccp up: http://127\.0\.0\.1:(\d+)", out.stdout).group(1))


def test_make_repro_beside_a_running_daily_shim_changes_none_of_its_files(op, keys, mock_zai,
                                                                          mock_anthropic):
    port = up(op)
    for model in ("claude-haiku-4-5", "claude-sonnet-4-5"):
        assert send(port, model, keys["CLIENT_API_KEY"]).status_code == 200
    wait_until(lambda: len((op.home / "logs" / "usage.jsonl").read_text().splitlines()) == 2, 10,
               "the daily shim's two records")
    wait_until(lambda: stored(op) == 2, 10, "the daily store's two samples")  # its writer thread
    before = daily_state(op, port)

    run = op.make("repro", timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]

    assert daily_state(op, port) == before
    run_logs = op.home / "results" / "runs" / "repro"
    records = [json.loads(line) for line in (run_logs / "usage.jsonl").read_text().splitlines()]
    assert len(records) > 20 and (run_logs / "ccp.sqlite3").exists()
    assert (op.home / "results" / "METRICS_repro.json").exists()
    # the daily shim still writes its own log, and only its own requests reached the session mocks
    assert send(port, "claude-sonnet-4-5", keys["CLIENT_API_KEY"]).status_code == 200
    wait_until(lambda: len((op.home / "logs" / "usage.jsonl").read_text().splitlines()) == 3, 10,
               "the daily shim's third record")
    assert len(mock_zai.calls) == 1 and len(mock_anthropic.calls) == 2


def interrupt(op, argv: list[str], started: str) -> tuple[subprocess.Popen, re.Match, str]:
    """Run `ccp ARGV` as a job of its own (as a terminal runs it), press Ctrl-C (SIGINT to the whole
    job) once it printed a line matching `started`; the process, that match and all it printed."""
    proc = subprocess.Popen([str(VENV_BIN / "ccp"), *argv], cwd=op.b, env=op.environ(),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        for line in proc.stdout:  # bounded: the run prints the line, or exits and closes stdout
            match = re.match(started, line)
            if match:
                break
        else:
            pytest.fail(f"`ccp {argv[0]}` never printed {started!r}")
        os.killpg(proc.pid, signal.SIGINT)
        out, _ = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert wait_until(lambda: not running_in_group(proc.pid), 10, "the job's processes to end")
    return proc, match, out


def test_ctrl_c_stops_a_repro_cleanly_and_still_records_the_run(op):
    proc, started, out = interrupt(op, ["repro", "--no-progress", "--run", "cut"],
                                   r"^\[repro\] shim http://\S+ \(pid (\d+)\)")
    assert proc.returncode == 130, out[-2000:]
    assert "[repro] interrupted after" in out and "shim and mocks stopped" in out
    assert not pid_alive(int(started.group(1)))
    tests_md = (op.home / "results" / "TESTS.md").read_text()
    assert "cut" in tests_md and "interrupted (Ctrl-C)" in tests_md
    assert (op.home / "results" / "METRICS_cut.json").exists()
    assert not (op.home / "logs").exists()  # the daily logs were never touched


@pytest.mark.parametrize("verb, started, said", [
    (["ab", "--toggle", "header-mode", "--rounds", "3", "--kinds", "curl", "--warmup", "0",
      "--run", "cut-ab"], r"^\[ab\] run=cut-ab", "[ab] interrupted after"),
    (["soak", "--probe", "curl", "--sleep-between", "0.2", "--until-successes", "1000",
      "--run", "cut-soak"], r"^\[soak\] run=cut-soak", "stopped: interrupted"),
])
def test_ctrl_c_stops_ab_and_soak_cleanly_and_still_records_the_run(op, verb, started, said):
    proc, _, out = interrupt(op, verb, started)
    assert proc.returncode == 130, out[-3000:]
    assert said in out, out[-3000:]
    tests_md = (op.home / "results" / "TESTS.md").read_text()
    assert verb[-1] in tests_md
    assert not (op.home / "logs").exists()
