"""reports.html: one data source per page, gates computed from the records read, run context,
lane colours, the error and latency charts, the drill-down tables and the `ccp report` edge."""
import json
import re

import pytest

from proxy.config.load import load_settings
from reports.context import run_context
from reports.html import (
    LOGS,
    METRICS,
    Source,
    build_report,
    load_logs,
    main,
    page_from_metrics,
    page_from_records,
    render_report,
)
from reports.svg import LABEL_W, lane_color

pytestmark = pytest.mark.quick

REMOTE = re.compile(r"""(<script\b|<link\b|<iframe\b|\b(src|href)\s*=\s*["']?\s*(https?:)?//|"""
                    r"""url\(\s*["']?\s*(https?:)?//|@import)""", re.I)
HAIKU = "claude-haiku-4-5-20251001"
VERSIONS = {"ccp": "0.1.0", "python": "3.11.7", "claude": "9.9.9 (test CLI)"}


def ctx(run=None):
    return run_context(run, load_settings({}), VERSIONS)


def write_log(path, records):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def page_html(records, **kw):
    return render_report(page_from_records(records, 0, Source(LOGS), ctx(), **kw), "t")


def section(html, ident):
    """The HTML of one <h2 id=...> section, up to the next <h2."""
    start = html.index(f'<h2 id="{ident}">')
    end = html.find("<h2 ", start + 1)
    return html[start:end if end > 0 else None]


def test_gates_are_computed_from_the_records_read(report_records):
    records = report_records(12)
    records.append({**records[0], "rid": "leak", "model": HAIKU})  # haiku on anthropic
    records.append({**records[1], "rid": "r1"})  # a duplicated rid
    html = page_html(records)
    gates = section(html, "gates")
    assert "not a repro run" not in html
    assert "computed by ccp report from the 14 records read" in gates
    for name in ("no_haiku_on_anthropic", "no_header_mode_on_anthropic", "streams_accounted",
                 "one_record_per_rid", "fallbacks"):
        assert name in gates
    assert gates.count('class="fail"') == 2 and "3/5 passed" in gates
    assert "leak" in gates and "r1×2" in gates


def test_metrics_file_gives_run_context_only_when_there_are_logs(tmp_path, report_records, report_sample):
    log = write_log(tmp_path / "logs" / "usage.jsonl", report_records(12))
    metrics, _ = report_sample
    metrics = {**metrics, "requests": 999, "by_lane": {"ghost": 999}}
    metrics["run"] = {**metrics["run"], "started_at": "2026-11-25T13:00:00.000Z",
                      "toggles": {"OFFLOAD_PAUSED": "1"},
                      "versions": {"ccp": "0.0.1-run", "claude": None, "python": "3.11.7"},
                      "gates": [{"name": "recorded_only_gate", "ok": False, "detail": "x"}]}
    mpath = tmp_path / "METRICS_repro.json"
    mpath.write_text(json.dumps(metrics))
    html = build_report([str(log.parent)], str(mpath), load_settings({}), "t")
    assert "<b>12</b> usage records" in html and "ghost" not in html
    assert ">999<" not in html and "<b>999</b>" not in html  # METRICS' numbers are not shown
    assert "recorded_only_gate" not in html  # gates come from the records, not the METRICS
    assert "gave the run context only" in html
    gates = section(html, "gates")
    assert "7/7 passed" in gates and "metrics_present" in gates and "rotated_before_run" in gates
    context = section(html, "context")
    assert "recorded by run repro" in context and "0.0.1-run" in context
    assert "<td>OFFLOAD_PAUSED</td><td>1</td>" in context


def test_metrics_only_page_says_so_and_shows_the_recorded_gates(report_sample):
    metrics, _ = report_sample
    page = page_from_metrics(metrics, Source(METRICS, metrics_path="results/METRICS_repro.json"),
                             ctx(metrics["run"]))
    html = render_report(page, "metrics only")
    source = section(html, "source")
    assert "Built from the METRICS file <code>results/METRICS_repro.json</code> only" in source
    gates = section(html, "gates")
    assert "recorded in the METRICS run block" in gates and "1/2 passed" in gates
    assert "1/8 &lt;bad&gt; r7" in gates  # autoescaped detail
    assert "not in a METRICS file" in section(html, "latency")
    assert "Not available" in section(html, "slowest") and "Not available" in section(html, "failures")
    assert 'id="failures-table"' not in html


def test_rotated_copies_are_left_out_by_default_and_named(tmp_path, report_records):
    logs = tmp_path / "logs"
    old = [dict(r, rid=f"old{i}", ts=f"2026-11-24T08:{i:02d}:00.000Z")
           for i, r in enumerate(report_records(3))]
    write_log(logs / "usage.jsonl.1", old)
    write_log(logs / "usage.jsonl", report_records(12))
    records, bad, source = load_logs([str(logs)])
    assert len(records) == 12 and [f.path for f in source.files] == [str(logs / "usage.jsonl")]
    assert source.left_out == (str(logs / "usage.jsonl.1"),)
    assert source.files[0][1:] == (12, 0, "2026-11-25T13:00:00Z", "2026-11-25T13:11:00Z")
    html = render_report(page_from_records(records, bad, source, ctx()), "t")
    src = section(html, "source")
    assert str(logs / "usage.jsonl") in src and "Not read (rotated copies" in src
    assert "covering <b>2026-11-25T13:00:00Z</b> to <b>2026-11-25T13:11:00Z</b>" in src
    records, _, source = load_logs([str(logs)], rotated=True)
    assert len(records) == 15 and source.left_out == () and len(source.files) == 2


def _fills_for(html, lane):
    """Colours drawn for `lane` in the lane bars, the box plots, and the bars over time."""
    bars = re.findall(rf'>{lane}</text><rect x="{LABEL_W}" [^>]*fill="(#[0-9a-f]+)"', html)
    boxes = re.findall(rf'fill="(#[0-9a-f]+)" stroke="#333"><title>{lane}/', html)
    buckets = re.findall(rf'fill="(#[0-9a-f]+)" data-count="\d+"><title>[^<]*: {lane} \d+', html)
    legend = re.findall(r'<svg width="10" height="10" aria-hidden="true"><rect width="10" height="10" '
                        rf'fill="(#[0-9a-f]+)"/></svg> {lane}<', html)
    return bars, boxes, buckets, legend


def test_one_colour_per_lane_in_every_chart_and_table(report_records):
    records = report_records(12) + [dict(r, rid=f"g{i}", lane="glm") for i, r in enumerate(report_records(4))]
    html = page_html(records)
    for lane in ("anthropic", "zai", "glm"):
        groups = _fills_for(html, lane)
        assert all(groups), (lane, groups)
        assert {c for group in groups for c in group} == {lane_color(lane)}
    assert len({lane_color(lane) for lane in ("anthropic", "zai", "glm")}) == 3


def test_errors_are_counts_per_time_bucket_over_the_whole_range(report_records):
    records = report_records(24)  # 13:00 … 13:23, one a minute; every fifth answer is a 502
    html = page_html(records)
    errors = section(html, "errors")
    counts = [int(n) for n in re.findall(r'data-count="(\d+)"', errors)]
    assert sum(counts) == 4 and "<b>4</b> error(s)" in errors
    assert "24 bucket(s) of 1 min, UTC" in errors
    # the same buckets as the requests chart: first and last label span the whole range
    assert ">13:00</text>" in errors and ">13:23</text>" in errors
    requests = section(html, "requests")
    assert sum(int(n) for n in re.findall(r'data-count="(\d+)"', requests)) == 24
    assert "<td>upstream_5xx</td>" in errors


def test_latency_axis_is_log_with_ticks_and_p50_at_the_median(report_records):
    html = page_html(report_records(12))
    latency = section(html, "latency")
    assert "ms, log scale" in latency and latency.count('class="tick"') >= 4
    marks = re.findall(r'<line class="p50" data-value="([\d.]+)"', latency)
    # anthropic/nonstream: i = 0, 6 → 10, 70 ms; median 40
    assert "40.000" in marks and "p50 40 ms" in latency


def test_drill_down_tables(report_records):
    records = report_records(12)
    records[2]["partial"] = "logs/partials/r2.partial"
    records[5].update(sse={"events": 1, "bytes": 9, "duration_ms": 2.0, "complete": False},
                      reason="streaming")
    html = page_html(records)
    slow = section(html, "slowest")
    rids = re.findall(r'<td class="mono">(r\d+)</td>', slow)
    assert rids == [f"r{i}" for i in range(11, -1, -1)]  # latency 10·(i+1): slowest first
    fails = section(html, "failures")
    rows = re.findall(r'<tr><td class="mono">(r\d+)</td>(.*?)</tr>', fails)
    assert [rid for rid, _ in rows] == ["r2", "r4", "r5", "r9"]
    by_rid = dict(rows)
    assert "logs/partials/r2.partial" in by_rid["r2"] and "partial" in by_rid["r2"]
    assert "HTTP 502, upstream_5xx" in by_rid["r4"] and "claude-sonnet-4-5" in by_rid["r4"]
    assert "incomplete stream" in by_rid["r5"] and "streaming" in by_rid["r5"]
    assert "4 request(s)." in fails


def test_report_is_self_contained(report_records):
    html = page_html(report_records(12))
    assert html.startswith("<!DOCTYPE html>")
    assert "http://" not in html and "https://" not in html
    assert not REMOTE.search(html)
    assert "<script" not in html.lower()


def test_empty_logs_render():
    html = page_html([])
    assert "<b>0</b> usage records" in html and "no data" in html and "No streamed requests" in html
    assert "no usage file found" in html and "none: every request answered 2xx" in html


def test_cli_writes_report_from_logs_and_metrics(tmp_path, report_records, report_sample, capsys):
    log = write_log(tmp_path / "usage.jsonl", report_records())
    metrics, _ = report_sample
    mpath = tmp_path / "METRICS_repro.json"
    mpath.write_text(json.dumps(metrics))
    out = tmp_path / "out" / "report.html"
    assert main([str(log), "--metrics", str(mpath), "--out", str(out)], str(tmp_path / "nologs"),
                str(tmp_path)) == 0
    html = out.read_text()
    assert "streams_accounted" in html and str(log) in html
    # METRICS alone (no logs folder) still renders, and says so
    assert main(["--metrics", str(mpath), "--out", str(out)], str(tmp_path / "nologs"), str(tmp_path)) == 0
    assert "Built from the METRICS file" in out.read_text()
    # a missing log named explicitly, or no logs and no METRICS, is a usage error
    assert main([str(tmp_path / "missing.jsonl")], str(tmp_path), str(tmp_path)) == 2
    assert main([], str(tmp_path / "nologs"), str(tmp_path)) == 2
    mpath.write_text("[1, 2]")
    assert main([str(log), "--metrics", str(mpath)], "unused", str(tmp_path)) == 2
    assert "UsageError: --metrics" in capsys.readouterr().err


def test_cli_rotated_flag(tmp_path, report_records):
    logs = tmp_path / "logs"
    write_log(logs / "usage.jsonl.2", [dict(r, rid=f"old{i}") for i, r in enumerate(report_records(5))])
    write_log(logs / "usage.jsonl", report_records(12))
    out = tmp_path / "r.html"
    assert main(["--out", str(out)], str(logs), str(tmp_path)) == 0
    assert "<b>12</b> usage records" in out.read_text()
    assert main(["--rotated", "--out", str(out)], str(logs), str(tmp_path)) == 0
    html = out.read_text()
    assert "<b>17</b> usage records" in html and "Not read" not in html
