"""reports.results_log: dated entries appended to results/TESTS.md."""
import pytest

from harness.gates import GateResult
from reports.results_log import append_entry, format_entry

pytestmark = pytest.mark.quick


def test_entries_append_with_verdicts_and_artifacts(tmp_path):
    verdicts = [GateResult("g_ok", True, "fine"), GateResult("g_bad", False, "a|b")]
    path = append_entry(tmp_path / "results", "repro", {"OFFLOAD_PAUSED": "1", "X": None},
                        verdicts, [tmp_path / "METRICS_repro.json"])
    append_entry(tmp_path / "results", "repro_go", {}, [{"name": "g", "ok": True, "detail": ""}], [])
    text = path.read_text()
    assert path.name == "TESTS.md" and text.startswith("# Test runs")
    assert text.count("# Test runs") == 1 and text.count("\n## ") == 2
    assert "— repro\n" in text and "— repro_go\n" in text
    assert "**FAIL** (1/2: g_bad)" in text and "PASS (1/1 gates)" in text
    assert "`OFFLOAD_PAUSED=1`" in text and "X=" not in text and "toggles: defaults" in text
    assert "| g_bad | **FAIL** | a\\|b |" in text
    assert "METRICS_repro.json`" in text
    assert text.index("— repro\n") < text.index("— repro_go\n")


def test_format_entry_is_dated():
    entry = format_entry("r", None, [], [], when="2026-11-25 13:00:00Z")
    assert entry.startswith("## 2026-11-25 13:00:00Z — r\n")
    assert "PASS (0/0 gates)" in entry
