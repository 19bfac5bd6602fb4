"""The `ccp` verbs the reports bring (reports.verbs): each is found through the `ccp.verbs` entry
point and, unless told otherwise, reads the profile's logs folder and writes to its results folder."""
import importlib
import json
from importlib.metadata import entry_points

import pytest

from reports import verbs
from reports.verbs import VERBS, gates_main, report_main, summarize_main, verify_main

pytestmark = pytest.mark.quick


def _record(i: int, **kw) -> dict:
    return {"ts": f"2026-11-25T13:{i:02d}:00.000Z", "rid": f"r{i}", "lane": "anthropic",
            "provider": "anthropic", "decision": "to_anth", "op": "nonstream", "status": 200,
            "model": "claude-sonnet-4-5", "latency_ms": 10.0 + i, "in_tokens": 5, "out_tokens": 2,
            **kw}


@pytest.fixture
def profile(tmp_path, monkeypatch):
    """A profile whose logs and results folders are under tmp_path, with three clean records."""
    logs, results = tmp_path / "logs", tmp_path / "results"
    logs.mkdir()
    (logs / "usage.jsonl").write_text("".join(json.dumps(_record(i)) + "\n" for i in range(3)))
    for key in ("CCP_HOME", "CCP_DB_PATH", "CCP_QUOTAS_FILE", "CCP_PROVIDERS_FILE", "CCP_CONFIG"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("CCP_LOGS_DIR", str(logs))
    monkeypatch.setenv("CCP_RESULTS_DIR", str(results))
    monkeypatch.setenv("CCP_CONFIG_HOME", str(tmp_path / "config"))
    return logs, results


def test_every_reports_verb_names_a_function_that_exists_and_says_what_it_does():
    for name, (target, help_) in VERBS.items():
        module, _, function = target.partition(":")
        assert callable(getattr(importlib.import_module(module), function)), name
        assert help_.strip(), name
    assert set(VERBS) == {"summarize", "verify-routing", "gates", "report", "bundle"}


def test_the_verbs_are_what_the_ccp_verbs_entry_point_hands_ccp():
    [point] = [e for e in entry_points(group="ccp.verbs") if e.name == "reports"]
    assert point.value == "reports.verbs:VERBS" and point.load() is verbs.VERBS


def test_summarize_reads_the_profiles_logs_and_writes_to_its_results(profile, capsys):
    logs, results = profile
    assert summarize_main([]) == 0
    metrics = json.loads((results / "METRICS.json").read_text())
    assert metrics["requests"] == 3 and (results / "SUMMARY.md").is_file()
    assert "3 records (0 bad lines)" in capsys.readouterr().out


def test_arguments_still_win_over_the_profiles_folders(profile, tmp_path):
    logs, results = profile
    other = tmp_path / "other"
    other.mkdir()
    (other / "usage.jsonl").write_text(json.dumps(_record(9)) + "\n")
    assert summarize_main([str(other), "--out", str(tmp_path / "elsewhere")]) == 0
    assert json.loads((tmp_path / "elsewhere" / "METRICS.json").read_text())["requests"] == 1
    assert not (results / "METRICS.json").exists()


def test_verify_routing_passes_clean_logs_and_fails_haiku_on_anthropic(profile, capsys):
    logs, _ = profile
    assert verify_main([]) == 0
    assert "records: 3 (0 bad lines)" in capsys.readouterr().out
    with open(logs / "usage.jsonl", "a") as fh:
        fh.write(json.dumps(_record(5, model="claude-haiku-4-5", rid="haiku-1")) + "\n")
    assert verify_main([]) == 1
    assert "FAIL no_haiku_on_anthropic" in capsys.readouterr().out


def test_verify_routing_without_a_logs_folder_is_a_usage_error(profile, capsys):
    logs, _ = profile
    (logs / "usage.jsonl").unlink()
    logs.rmdir()
    assert verify_main([]) == 2
    assert "UsageError" in capsys.readouterr().err


def test_gates_want_the_metrics_in_the_profiles_results_folder(profile, capsys):
    _, results = profile
    assert gates_main([]) == 1
    assert f"FAIL metrics_present: {results / 'METRICS.json'} does not exist" in capsys.readouterr().out
    assert summarize_main([]) == 0
    capsys.readouterr()
    assert gates_main([]) == 0
    assert "PASS metrics_present" in capsys.readouterr().out


def test_report_writes_the_page_into_the_profiles_results(profile):
    _, results = profile
    assert report_main(["--title", "verbs test"]) == 0
    page = (results / "report.html").read_text(encoding="utf-8")
    assert "verbs test" in page and "<html" in page.lower()
