"""reports.html: the self-contained HTML report and the `ccp report` edge."""
import json
import re

import pytest

from reports.html import main, over_time, render_report
from reports.summarize import summarize
from reports.usage_io import to_frame

pytestmark = pytest.mark.quick

REMOTE = re.compile(r"""(<script\b|<link\b|<iframe\b|\b(src|href)\s*=\s*["']?\s*(https?:)?//|"""
                    r"""url\(\s*["']?\s*(https?:)?//|@import)""", re.I)


def test_report_shows_gates_lanes_and_sections(report_sample):
    metrics, df = report_sample
    html = render_report(metrics, df, "Reviewer report")
    assert html.startswith("<!DOCTYPE html>")
    assert "<title>Reviewer report</title>" in html
    for gate in ("no_haiku_on_anthropic", "streams_accounted"):
        assert gate in html
    assert html.count('class="pass"') == 1 and html.count('class="fail"') == 1
    assert "1/2 passed" in html
    for lane in ("anthropic", "zai", "anthropic/stream", "zai/nonstream", "upstream_5xx", "to_zai"):
        assert lane in html
    assert html.count("<svg") == 6
    assert "Licence state" in html and "zai_offload" in html
    assert "1/8 &lt;bad&gt; r7" in html  # autoescaped detail


def test_report_is_self_contained(report_sample):
    metrics, df = report_sample
    html = render_report(metrics, df, "t")
    assert "http://" not in html and "https://" not in html
    assert not REMOTE.search(html)
    assert "<script" not in html.lower()


def test_report_without_run_or_records():
    df = to_frame([])
    html = render_report(summarize(df), df, "empty")
    assert "No gate verdicts" in html and "no data" in html and "No streamed requests" in html


def test_over_time_buckets_count_everything(report_records):
    df = to_frame(report_records(12))
    buckets, series = over_time(df, "decision", buckets=4)
    assert len(buckets) == 4
    assert sum(map(sum, series.values())) == 12
    assert set(series) == {"to_anth", "to_zai"}
    _, errors = over_time(df, "err_type", skip_none=True)
    assert set(errors) == {"upstream_5xx"} and sum(errors["upstream_5xx"]) == 2


def test_cli_writes_report_from_logs_and_metrics(tmp_path, report_records, report_sample):
    log = tmp_path / "usage.jsonl"
    log.write_text("".join(json.dumps(r) + "\n" for r in report_records()))
    metrics, _ = report_sample
    mpath = tmp_path / "METRICS_repro.json"
    mpath.write_text(json.dumps(metrics))
    out = tmp_path / "out" / "report.html"
    assert main([str(log), "--metrics", str(mpath), "--out", str(out)], str(tmp_path / "nologs"),
                str(tmp_path)) == 0
    assert "streams_accounted" in out.read_text()
    # METRICS alone (no logs folder) still renders; a missing log named explicitly is an error
    assert main(["--metrics", str(mpath), "--out", str(out)], str(tmp_path / "nologs"), str(tmp_path)) == 0
    assert main([str(tmp_path / "missing.jsonl")], str(tmp_path), str(tmp_path)) == 2
