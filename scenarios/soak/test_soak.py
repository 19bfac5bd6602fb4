"""`ccp soak` on mocks (the CI version of `make overnight`): a real shim process killed and stopped in
the middle, an upstream outage, HTTP/1 every third attempt — the loop resumes, counts the gaps, writes
its snapshots and stops by itself once both lanes have succeeded."""
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from harness.ab import AsgiUpstream
from harness.shim import PROJECT_ROOT, clean_env
from harness.tls_mock import TlsMock

pytestmark = pytest.mark.soak


def _soak(tmp_path: Path, args: list[str], extra_env: dict | None = None, timeout: float = 120):
    env = clean_env({"CCP_LOGS_DIR": str(tmp_path / "logs"), "CCP_RESULTS_DIR": str(tmp_path / "results"),
                     **(extra_env or {})})
    return subprocess.run([sys.executable, "-m", "proxy", "soak", "--run", "ci", *args], env=env,
                          cwd=PROJECT_ROOT, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout)


def _outputs(tmp_path: Path) -> tuple[dict, list[dict]]:
    out = tmp_path / "results" / "overnight"
    report = json.loads((out / "ci-SOAK.json").read_text())
    usage = [json.loads(line) for line in (out / "ci-usage.jsonl").read_text().splitlines() if line]
    return report, usage


def test_soak_survives_a_shim_kill_a_shim_stop_and_an_upstream_outage(tmp_path):
    # knobs through the environment, as `make overnight` passes them; the chaos by attempt number
    out = _soak(tmp_path, ["--probe", "curl", "--until-successes", "6", "--window", "4"],
                {"MAX_MINUTES": "3", "TIMEOUT_SECS": "10", "SLEEP_BETWEEN": "0.1",
                 "SOAK_CHAOS": "kill@3,outage@5-6,restart@8"})
    assert out.returncode == 0, out.stdout + out.stderr
    report, usage = _outputs(tmp_path)
    assert report["stop_reason"] == "done"
    assert report["successes"] == {"haiku": 6, "sonnet": 6}
    # the soak's shim kept its logs and store in its run folder, never in the daily logs
    assert (tmp_path / "results" / "runs" / "soak" / "ci" / "ccp.sqlite3").exists()
    assert not (tmp_path / "logs").exists()
    totals = report["totals"]
    # 1 2 ok, 3 shim killed, 4 ok, 5 6 outage, 7 ok, 8 shim stopped, 9 10 ok → 6 successes at 10
    assert totals["attempts"] == 10
    assert totals["failed_attempt_numbers"] == [3, 5, 6, 8]
    assert [(r["after_attempt"], r["ok"]) for r in report["recoveries"]] == [(3, True), (8, True)]
    assert report["recoveries"][0]["reason"] == "exited with code -9"  # SIGKILL
    assert report["recoveries"][1]["reason"] == "exited with code 0"  # SIGTERM: a clean stop
    pids = [a["shim_pid"] for a in report["attempts"]]
    assert pids[0] == pids[1] == pids[2] != pids[3] == pids[6] != pids[8]
    # every restart kept the port, so a client configured once keeps working
    assert len({a["port"] for a in report["attempts"]}) == 1

    # the gaps: per lane, from the first failed probe to the next success, restarts counted
    for lane in ("haiku", "sonnet"):
        gaps = [g for g in report["gaps"] if g["lane"] == lane]
        assert [(g["first_attempt"], g["last_attempt"], g["failed_probes"], g["restarts"],
                 g["recovered_at"]) for g in gaps] == [(3, 3, 1, 1, 4), (5, 6, 2, 0, 7), (8, 8, 1, 1, 9)]
        assert all(g["seconds"] > 0 and not g["open"] for g in gaps)
        assert report["gap_totals"][lane]["gaps"] == 3
        assert report["gap_totals"][lane]["seconds"] == pytest.approx(sum(g["seconds"] for g in gaps),
                                                                      abs=0.01)

    # every request that reached the shim has exactly one usage record; the dead-shim probes none
    probes = [p for a in report["attempts"] for p in a["probes"]]
    assert len(probes) == 20
    unreached = [(p["attempt"], p["lane"]) for p in probes if not p["reached"]]
    assert sorted(unreached) == [(3, "haiku"), (3, "sonnet"), (8, "haiku"), (8, "sonnet")]
    counts = Counter(r["rid"] for r in usage)
    assert len(usage) == 16 and set(counts.values()) == {1}
    assert {p["rid"] for p in probes if p["reached"]} == set(counts)
    outage = [r for r in usage if r["rid"] in {p["rid"] for p in probes if p["attempt"] in (5, 6)}]
    assert len(outage) == 4
    assert {(r["status"], r["upstream_status"], r["err_type"]) for r in outage} == {(503, 503, "upstream_5xx")}
    assert {r["lane"] for r in usage if r["model"].startswith("claude-haiku")} == {"zai"}

    # windows of 4 attempts: 1-4, 5-8, 9-10, each a METRICS snapshot over its own records
    out_dir = tmp_path / "results" / "overnight"
    snaps = [json.loads((out_dir / f"METRICS_ci-w{i:03d}.json").read_text()) for i in (1, 2, 3)]
    assert not (out_dir / "METRICS_ci-w004.json").exists()
    assert [(s["window"]["first_attempt"], s["window"]["last_attempt"]) for s in snaps] == \
        [(1, 4), (5, 8), (9, 10)]
    assert [s["requests"] for s in snaps] == [6, 6, 4]
    assert snaps[1]["by_err_type"] == {"none": 2, "upstream_5xx": 4}
    assert [s["window"]["recoveries"] for s in snaps] == [1, 1, 0]
    assert json.loads((out_dir / "METRICS_ci.json").read_text())["requests"] == 16

    page = (out_dir / "ci-SOAK.md").read_text()
    assert "stopped: **done** after 10 attempt(s)" in page and "| haiku | 5–6 | 2 |" in page
    assert "exited with code -9" in page
    tests_md = (tmp_path / "results" / "TESTS.md").read_text()
    assert "— soak ci" in tests_md and "PASS (" in tests_md and "SOAK_CHAOS=kill@3" in tests_md


def test_soak_that_never_succeeds_stops_at_its_limit_and_fails(tmp_path):
    out = _soak(tmp_path, ["--probe", "http", "--max-attempts", "3", "--sleep-between", "0",
                           "--timeout-secs", "10", "--chaos", "outage@1-9:reset_before_headers"])
    assert out.returncode == 1, out.stdout + out.stderr
    assert "FAIL lanes_succeeded: haiku 0/1, sonnet 0/1" in out.stdout
    report, usage = _outputs(tmp_path)
    assert report["stop_reason"] == "max_attempts" and report["totals"]["attempts"] == 3
    assert report["recoveries"] == []  # the shim was fine; the upstream was not
    gaps = report["gaps"]
    assert [(g["lane"], g["failed_probes"], g["open"]) for g in gaps] == [("haiku", 3, True),
                                                                           ("sonnet", 3, True)]
    assert len(usage) == 6 and {r["err_type"] for r in usage} == {"net"}
    assert "**FAIL**" in (tmp_path / "results" / "TESTS.md").read_text()


def test_http1_every_third_attempt_is_what_the_upstream_negotiated(tmp_path, keys):
    """Against an upstream that offers HTTP/2 (TLS), attempts 3 and 6 go out on HTTP/1.1."""
    app = AsgiUpstream()
    with TlsMock(app) as tls:
        env = {"ALLOW_REAL_API": "1", "ZAI_API_KEY": keys["ZAI_API_KEY"],
               "ANTHROPIC_AUTH_TOKEN": keys["ANTHROPIC_AUTH_TOKEN"],
               "CCP_ANTHROPIC_BASE_URL": tls.base_url, "CCP_ZAI_BASE_URL": tls.base_url + "/api/anthropic",
               "CCP_CA_BUNDLE": tls.ca_path, "SOAK_TOGGLE_H1": "1", "CCP_HTTP2": "1"}
        out = _soak(tmp_path, ["--probe", "http", "--until-successes", "6", "--sleep-between", "0",
                               "--timeout-secs", "10"], env)
    assert out.returncode == 0, out.stdout + out.stderr
    report, usage = _outputs(tmp_path)
    assert report["upstreams"].startswith("real") and report["totals"]["attempts"] == 6
    assert [a["n"] for a in report["attempts"] if a["h1"]] == [3, 6]
    # planned restarts: into HTTP/1 before 3 and 6, back out before 4; none counted as recoveries
    assert [(s["before_attempt"], s["h1"]) for s in report["switches"]] == [(3, True), (4, False),
                                                                            (6, True)]
    assert report["totals"]["recoveries"] == 0
    # what the upstream saw, two requests per attempt in order
    versions = [c["http_version"] for c in app.calls]
    assert versions == ["2", "2", "2", "2", "1.1", "1.1", "2", "2", "2", "2", "1.1", "1.1"]
    by_rid = {r["rid"]: r for r in usage}
    h2 = {a["n"]: {by_rid[p["rid"]]["h2"] for p in a["probes"]} for a in report["attempts"]}
    assert h2 == {1: {True}, 2: {True}, 3: {False}, 4: {True}, 5: {True}, 6: {False}}


def test_soak_through_the_claude_cli(tmp_path, claude_bin):
    out = _soak(tmp_path, ["--probe", "cli", "--sleep-between", "0", "--timeout-secs", "60"])
    assert out.returncode == 0, out.stdout + out.stderr
    report, usage = _outputs(tmp_path)
    assert report["config"]["kind"] == "cli" and report["totals"]["attempts"] == 1
    assert {p["routed"] for p in report["attempts"][0]["probes"]} == {"zai", "anthropic"}
    assert len(usage) == 2 and {r["client_session"] is not None for r in usage} == {True}
