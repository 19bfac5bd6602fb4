"""The operators' make targets and file names, run as typed (`PORT=… make go-proxy`, `make repro-go`,
…) with the state in a ccp home of the test's own: each writes the artifact the operators' guides
name, under that home."""
from __future__ import annotations

import importlib.util
import json
import re
import socket

import pytest

from harness.shim import wait_until
from scenarios.operator.conftest import send

pytestmark = pytest.mark.operator


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def lines(path) -> list[dict]:
    return [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]


def test_go_proxy_logs_rotate_summarize_and_verify_routing(op, keys):
    port = free_port()
    up = op.make("go-proxy", env={"PORT": str(port)}, timeout=60)
    assert up.returncode == 0, up.stdout + up.stderr
    assert f"ccp up: http://127.0.0.1:{port}" in up.stdout
    usage = op.home / "logs" / "usage.jsonl"
    for model in ("claude-haiku-4-5", "claude-sonnet-4-5"):
        assert send(port, model, keys["CLIENT_API_KEY"]).status_code == 200
    wait_until(lambda: usage.exists() and len(lines(usage)) == 2, 10, "two daily records")

    rotated = op.make("logs-rotate", timeout=60)
    assert rotated.returncode == 0 and "rotated to" in rotated.stdout, rotated.stdout
    assert len(lines(op.home / "logs" / "usage.jsonl.1")) == 2
    assert send(port, "claude-haiku-4-5", keys["CLIENT_API_KEY"]).status_code == 200
    wait_until(lambda: usage.exists() and len(lines(usage)) == 1, 10, "the shim follows the rotation")

    summary = op.make("summarize", timeout=60)
    assert summary.returncode == 0, summary.stdout + summary.stderr
    metrics = json.loads((op.home / "results" / "METRICS.json").read_text())
    assert metrics["requests"] == 3 and (op.home / "results" / "SUMMARY.md").exists()
    verify = op.make("verify-routing", timeout=60)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert op.ccp("down").returncode == 0


def test_repro_go_writes_the_go_shims_artifact_names(op, claude_bin):
    out = op.make("repro-go", timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    results = op.home / "results"
    # 31 probes, two sandbox-session turns, one cut stream and 16 property probes
    # (scenarios/repro/test_repro_job.py)
    assert json.loads((results / "METRICS_go_repro.json").read_text())["requests"] == 50
    assert (results / "GO-REPRO-SUMMARY.md").read_text().startswith("# ")
    assert "go_repro" in (results / "TESTS.md").read_text()


def test_repro_go_quick_writes_its_metrics(op, claude_bin):
    out = op.make("repro-go-quick", timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    metrics = json.loads((op.home / "results" / "METRICS_go_repro_quick.json").read_text())
    assert metrics["requests"] == 2
    assert {k: v for k, v in metrics["completions_by_lane"].items() if v} == {"anthropic": 1, "zai": 1}


@pytest.mark.skipif(importlib.util.find_spec("mitmproxy") is None, reason="mitmproxy not installed")
def test_repro_py_writes_the_mitm_routers_artifact_names(op, claude_bin):
    out = op.make("repro-py", timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    results = op.home / "results"
    assert json.loads((results / "METRICS_py_repro.json").read_text())["requests"] > 20
    assert (results / "PY-REPRO-SUMMARY.md").exists()


def test_overnight_go_runs_the_soak_with_the_operators_knobs(op):
    out = op.make("overnight-go", env={"MAX_MINUTES": "2", "TIMEOUT_SECS": "20",
                                       "SLEEP_BETWEEN": "0", "SOAK_PROBE": "curl"}, timeout=180)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    reports = list((op.home / "results" / "overnight").glob("*-SOAK.json"))
    assert len(reports) == 1
    report = json.loads(reports[0].read_text())
    assert report["successes"] == {"haiku": 1, "sonnet": 1} and report["stop_reason"] == "done"
    assert not (op.home / "logs").exists()  # its shim kept to its run folder


def test_make_help_names_the_operators_targets(op):
    out = op.make("help", timeout=30)
    for target in ("repro-go ", "repro-go-quick", "repro-py", "go-proxy", "logs-rotate",
                   "overnight-go", "summarize"):
        assert re.search(rf"make {re.escape(target)}", out.stdout), target
