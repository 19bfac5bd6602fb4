"""`ccp repro` end to end, as `make repro` runs it: exit 0, the lane table, gates, METRICS on disk."""
import json
import subprocess
import sys

import pytest

from harness.shim import PROJECT_ROOT, clean_env

pytestmark = [pytest.mark.repro, pytest.mark.repro_go]


def _run(tmp_path, extra=None):
    env = clean_env({"CCP_LOGS_DIR": str(tmp_path / "logs"), "CCP_RESULTS_DIR": str(tmp_path / "results"),
                     **(extra or {})})
    return subprocess.run([sys.executable, "-m", "proxy", "repro"], env=env, cwd=PROJECT_ROOT,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=180)


def test_repro_passes_on_mocks(tmp_path, claude_bin):
    out = _run(tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "all gates passed" in out.stdout
    for gate in ("no_haiku_on_anthropic", "long_sse_byte_exact", "readyz_ok", "providers_resolve",
                 "rotated_before_run", "zai_mock_hygiene", "probes_routed", "sse_byte_exact",
                 "toggles_effective", "one_record_per_request", "no_secret_in_artifacts",
                 "routes_at_mocks", "credentials_at_mocks", "no_hop_or_own_headers",
                 "compressed_relayed_exact", "first_event_before_end"):
        assert f"PASS {gate}" in out.stdout
    # the scan had partials, trajectories and a tee sample to read; the streams had the hard spellings
    assert "(1 partials, 4 trajectory, 1 tee), no secret found" in out.stdout
    assert "(CR LF, comment lines, split UTF-8)" in out.stdout
    metrics = json.loads((tmp_path / "results" / "METRICS_repro.json").read_text())
    # 31 probes, two sandbox-session turns, one cut stream and 16 property probes (the toggle turns
    # have their own logs); the two upstream failures complete nothing
    assert metrics["requests"] == 50
    assert {k: v for k, v in metrics["completions_by_lane"].items() if v} == \
        {"zai": 20, "anthropic": 27, "catalog": 1}
    assert metrics["run"]["versions"]["claude"].startswith("2.")
    assert {p["kind"] for p in metrics["run"]["probes"]} == {"cli", "curl", "http", "sdk"}
    summary = (tmp_path / "results" / "repro-SUMMARY.md").read_text()
    assert "| readyz_ok | PASS |" in summary and "claude CLI 2." in summary
    # (and the two control records of the pause and the resume)
    assert (tmp_path / "results" / "repro-usage.jsonl").read_text().count("\n") == 52
    # a second run starts from an empty run folder, so each METRICS covers one run; the daily logs
    # folder (CCP_LOGS_DIR) is never written
    again = _run(tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    run_logs = tmp_path / "results" / "runs" / "repro"
    assert (run_logs / "usage.jsonl").read_text().count("\n") == 52
    assert not list(run_logs.glob("usage.jsonl.*")) and not (tmp_path / "logs").exists()
    assert json.loads((tmp_path / "results" / "METRICS_repro.json").read_text())["requests"] == 50


def test_repro_fails_when_haiku_is_kept_off_zai(tmp_path):
    """A run that sends haiku to anthropic must fail its gates (exit 1), not pass quietly."""
    out = _run(tmp_path, {"FORCE_HAIKU_TO_ZAI": "0"})
    assert out.returncode == 1, out.stdout + out.stderr
    assert "FAIL no_haiku_on_anthropic" in out.stdout


def test_repro_config_error_exits_2(tmp_path):
    out = _run(tmp_path, {"ZAI_HEADER_MODE": "cookie"})
    assert out.returncode == 2
    assert "ConfigError: ZAI_HEADER_MODE" in out.stderr


@pytest.mark.repro_quick
def test_repro_quick(tmp_path, claude_bin):
    env = clean_env({"CCP_LOGS_DIR": str(tmp_path / "logs"), "CCP_RESULTS_DIR": str(tmp_path / "results")})
    out = subprocess.run([sys.executable, "-m", "proxy", "repro", "--quick"], env=env, cwd=PROJECT_ROOT,
                         stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stdout + out.stderr
    metrics = json.loads((tmp_path / "results" / "METRICS_repro_quick.json").read_text())
    assert metrics["requests"] == 2 and metrics["completions_by_lane"]["zai"] == 1
    assert [p["kind"] for p in metrics["run"]["probes"]] == ["cli", "cli"]
