"""Every `ccp` verb run as typed, from a folder outside the checkout, with its effect checked on what
the upstream mocks received and the files written. The daily verbs share one background shim (the
operator's day, in order); the long-running verbs run in short forms here or have scenarios of their
own, named in LONG_VERBS, which the last test holds to the verb list."""
from __future__ import annotations

import csv
import json
import re
import tarfile

import pytest

from harness.shim import PROJECT_ROOT, wait_until
from proxy.cli.main import all_verbs
from scenarios.operator.conftest import send, stored

pytestmark = pytest.mark.operator

# verbs whose real command runs in a scenario elsewhere (file: the string that runs it there)
LONG_VERBS = {
    "serve": ("scenarios/test_cli.py", '"serve"'),
    "mock-upstream": ("scenarios/test_cli.py", '"mock-upstream"'),
    "repro": ("scenarios/repro/test_repro_job.py", '"repro"'),
    "soak": ("scenarios/soak/test_soak.py", '"soak"'),
    "ab": ("scenarios/ab/test_ab.py", '"ab"'),
    "mitm": ("scenarios/mitm/test_mitm_cli.py", '"mitm"'),
    "probe": ("scenarios/operator/test_shell_functions.py", "ccp-haiku"),
    "shell-init": ("scenarios/operator/test_shell_functions.py", "ccp shell-init"),
    "license": ("scenarios/licence/test_licence_smoke.py", '"license"'),
    "bench": ("scenarios/operator/test_every_verb.py", '"bench"'),
    "mutate": ("scenarios/mutate/test_mutate_run.py", '"mutate"'),
    "sandbox-smoke": ("scenarios/operator/test_every_verb.py", '"sandbox-smoke"'),
}


def ok(out, *needles: str) -> str:
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "Traceback" not in out.stderr, out.stderr
    for needle in needles:
        assert needle in out.stdout, (needle, out.stdout[-2000:])
    return out.stdout


def records(op) -> list[dict]:
    path = op.home / "logs" / "usage.jsonl"
    return [json.loads(ln) for ln in path.read_text().splitlines()] if path.exists() else []


def test_the_daily_verbs_from_another_folder(op, keys, mock_anthropic, mock_zai):
    key = keys["CLIENT_API_KEY"]
    up = ok(op.ccp("up", "--port", "0", cwd=op.a), "ccp up: ")
    port = int(re.match(r"^ccp up: http://127\.0\.0\.1:(\d+) pid (\d+)", up).group(1))
    ccp = lambda *args, **kw: op.ccp(*args, cwd=op.b, **kw)  # noqa: E731 - the other folder

    assert send(port, "claude-haiku-4-5", key).status_code == 200
    assert send(port, "claude-sonnet-4-5", key).status_code == 200
    wait_until(lambda: len(records(op)) == 2 and stored(op) == 2, 10, "two records, two samples")
    ok(ccp("ps"), f"port {port}")
    ok(ccp("env"), f"export ANTHROPIC_BASE_URL=http://127.0.0.1:{port}")
    assert len(ok(ccp("logs", "-n", "5")).strip().splitlines()) == 2
    status = ok(ccp("status"), "controls")
    assert re.search(r"zai\s+claude-haiku-4-5\s+1\s", status), status
    usage = json.loads(ok(ccp("usage", "--json")))
    assert usage["summary"]
    providers = ok(ccp("providers"), "anthropic", "zai")
    assert mock_anthropic.base_url in providers

    # the runtime controls, each seen on what the mocks received next
    ok(ccp("pause"))
    assert send(port, "claude-haiku-4-5", key, "paused").status_code == 200
    assert "paused" in str(mock_anthropic.calls[-1].json["messages"])
    ok(ccp("resume"))
    ok(ccp("set", "zai-header-mode", "authorization"))
    assert send(port, "claude-haiku-4-5", key, "bearer").status_code == 200
    assert mock_zai.calls[-1].headers.get("authorization") == f"Bearer {keys['ZAI_API_KEY']}"
    ok(ccp("model", "claude-opus-4-1"))
    assert send(port, "claude-sonnet-4-5", key, "override").status_code == 200
    assert mock_anthropic.calls[-1].json["model"] == "claude-opus-4-1"
    refused = ccp("model", "no-such-model-anywhere")
    assert refused.returncode == 2 and "claude-sonnet-4-5 -> the anthropic lane" in refused.stderr
    ok(ccp("model", "--clear"))
    ok(ccp("providers", "reload"))
    controls = [r for r in records(op) if r.get("op") == "control"]
    assert [c["control"]["name"] for c in controls] == ["paused", "paused", "zai_header_mode",
                                                         "model", "model", "providers"]

    # the store, quotas, partials and rotation
    wait_until(lambda: stored(op) == 5, 10, "the five model requests in the store")
    db = json.loads(ok(ccp("db", "status")))
    assert db["samples"] == 5  # the five model requests; control changes are not samples
    ok(ccp("db", "export", "--csv", str(op.b / "samples.csv")))
    with open(op.b / "samples.csv", newline="") as fh:
        assert len(list(csv.DictReader(fh))) == db["samples"]
    none = ccp("quotas", "reload")
    assert none.returncode == 2 and none.stderr.startswith("QuotaError: no quotas file")
    (op.b / "quotas.yaml").write_text("quotas:\n  haiku:\n    weekly: {tokens: 1000000}\n")
    ok(ccp("quotas", "reload", str(op.b / "quotas.yaml")))
    assert re.search(r"haiku.*weekly|weekly.*haiku", ok(ccp("status")), re.S | re.I)
    ok(ccp("partials"))
    ok(ccp("logs-rotate"), "rotated to")
    assert (op.home / "logs" / "usage.jsonl.1").exists()

    # reports over the daily logs, into the home's results
    ok(ccp("summarize"))
    assert json.loads((op.home / "results" / "METRICS.json").read_text())["requests"] == 5
    ok(ccp("verify-routing"))
    ok(ccp("gates", "--no-metrics"))
    ok(ccp("report", "--rotated"))
    assert "usage.jsonl.1" in (op.home / "results" / "report.html").read_text()  # --rotated
    bundle = ok(ccp("bundle"))
    tgz = next((op.home / "results" / "bundles").glob("*.tgz"))
    with tarfile.open(tgz) as tar:
        assert any(n.endswith("METRICS.json") for n in tar.getnames()), bundle
    no_sessions = ccp("trajectories", "merge", str(op.home / "logs"), "--out", str(op.home / "m"))
    assert no_sessions.returncode == 0 and no_sessions.stdout.startswith("0 session(s) in ")
    shim_a = op.home / "fleet-a" / "trajectory" / "sess-1"
    (shim_a / "query").mkdir(parents=True)
    (shim_a / "query" / "20261204T080000.000Z-a-1.json").write_text('{"instance": "a"}')
    ok(ccp("trajectories", "merge", str(op.home / "fleet-a"), "--out", str(op.home / "merged")))
    index = (op.home / "merged" / "sess-1" / "index.jsonl").read_text().splitlines()
    assert [json.loads(line)["instance"] for line in index] == ["a"]
    lic = ccp("license", "status")  # community mode: no licence, exit 1, said plainly
    assert lic.returncode == 1 and lic.stdout.startswith("licence: missing"), lic.stdout
    doctor = ccp("doctor")
    assert "Traceback" not in doctor.stderr and str(op.home) in doctor.stdout

    # restart keeps the port, down stops it
    pid_before = int((op.home / "logs" / "ccp.pid").read_text())
    ok(ccp("restart"), f"http://127.0.0.1:{port}")
    assert int((op.home / "logs" / "ccp.pid").read_text()) != pid_before
    ok(ccp("down"), "stopped")
    assert ccp("ps").returncode == 1
    assert sorted(p.name for p in op.b.iterdir()) == ["quotas.yaml", "samples.csv"]  # only ours


def test_bench_quick_runs_and_writes_its_report_under_the_home(op):
    out = op.ccp("bench", "--quick", "--rounds", "1", "--targets", "direct,ccp", "--no-install",
                 "--no-profile", cwd=op.b, timeout=300)
    ok(out)
    reports = list((op.home / "results").glob("BENCH-*.json"))
    assert len(reports) == 1
    report = json.loads(reports[0].read_text())
    assert "ccp" in json.dumps(report)


def test_sandbox_smoke_on_the_local_runtime_keeps_to_its_run_folder(op, claude_bin):
    out = op.ccp("sandbox-smoke", "--runtime", "local", "--port", "0", cwd=op.b, timeout=300)
    ok(out, '"class": "ok"')
    assert (op.home / "results" / "runs" / "sandbox").is_dir()
    assert not (op.home / "logs").exists()


def test_every_verb_has_a_scenario_that_runs_it():
    here = (PROJECT_ROOT / "scenarios" / "operator" / "test_every_verb.py").read_text()
    daily = here.split("def test_the_daily_verbs_from_another_folder", 1)[1].split("\ndef ", 1)[0]
    for verb in all_verbs():
        if verb in LONG_VERBS:
            path, needle = LONG_VERBS[verb]
            assert needle in (PROJECT_ROOT / path).read_text(), (verb, path)
        else:
            assert re.search(rf'ccp\("{re.escape(verb)}"', daily) or \
                f'op.ccp("{verb}"' in daily, f"no scenario runs `ccp {verb}`"


def test_piping_a_verb_into_head_gives_no_traceback(op):
    logs = op.home / "logs"
    logs.mkdir(parents=True)
    line = json.dumps({"ts": "2026-12-03T08:00:00.000Z", "rid": "r", "model": "claude-haiku-4-5",
                       "lane": "zai", "decision": "to_zai", "status": 200, "op": "nonstream",
                       "latency_ms": 1.0})
    (logs / "usage.jsonl").write_text((line + "\n") * 20000)  # far more than a pipe holds
    for command in ("ccp logs -n 20000", "ccp logs --raw -n 20000", "ccp --help", "ccp providers",
                    "ccp summarize --help"):
        out = op.run(["bash", "-c", f"{command} | head -1"], timeout=60)
        assert out.returncode == 0 and len(out.stdout.splitlines()) == 1, (command, out.stdout)
        assert out.stderr == "", (command, out.stderr)
