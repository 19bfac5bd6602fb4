"""reports.summarize: METRICS from known records, rendering, and the `ccp summarize` edge."""
import json

import pytest

from reports.summarize import main, render_summary, summarize, write_metrics
from reports.usage_io import to_frame

pytestmark = pytest.mark.quick


def rec(rid, lane="anthropic", decision="to_anth", op="nonstream", status=200, **kw):
    base = {"ts": "2026-11-25T13:00:00.123Z", "rid": rid, "lane": lane, "provider": lane,
            "decision": decision, "op": op, "status": status, "err_type": None,
            "reason": "streaming" if op == "stream" else None, "sse": None,
            "model": "claude-sonnet-4-5", "in_tokens": 0, "out_tokens": 0}
    base.update(kw)
    return base


def stream(rid, lane="zai", complete=True, duration=10.0, **kw):
    sse = {"events": 5, "bytes": 100, "duration_ms": duration, "complete": complete}
    return rec(rid, lane=lane, decision="to_zai" if lane == "zai" else "to_anth", op="stream",
               sse=sse, **kw)


@pytest.fixture
def records():
    return [
        *(rec(f"a{i}", latency_ms=float(i), ttfb_ms=float(i) / 10, in_tokens=10, out_tokens=1)
          for i in range(1, 6)),  # latencies 1..5
        stream("z1", duration=10.0, in_tokens=3, out_tokens=2, cache_read_tokens=4),
        stream("z2", duration=20.0, cache_creation_input_tokens=6),
        stream("z3", complete=False, duration=30.0, status=200, err_type="client_abort"),
        rec("bad", lane=None, decision=None, status=400, err_type="bad_request"),
        rec("glm", lane="glm", decision="route", status=200),
        rec("fail", lane="zai", decision="to_zai", status=502, err_type="upstream_5xx"),
    ]


def test_counts_and_tokens(records):
    m = summarize(to_frame(records, bad_lines=2), generated_at="T")
    assert m["requests"] == 11 and m["bad_lines"] == 2 and m["generated_at"] == "T"
    assert m["by_lane"] == {"anthropic": 5, "zai": 4, "glm": 1, "none": 1}
    assert m["by_op"] == {"nonstream": 8, "stream": 3}
    assert m["by_status"] == {"200": 9, "400": 1, "502": 1}
    assert m["by_err_type"] == {"none": 8, "client_abort": 1, "bad_request": 1, "upstream_5xx": 1}
    t = m["tokens"]
    assert (t["in_tokens"], t["out_tokens"], t["cache_read_tokens"], t["cache_creation_tokens"]) \
        == (53, 7, 4, 6)
    assert t["by_lane"]["anthropic"]["in_tokens"] == 50
    assert t["by_lane"]["zai"] == {"in_tokens": 3, "out_tokens": 2, "cache_read_tokens": 4,
                                   "cache_creation_tokens": 6}


def test_percentiles_on_known_data(records):
    m = summarize(to_frame(records))
    # linear interpolation over 1..5: p50 = 3, p95 = 4 + 0.8 * (5 - 4) = 4.8
    assert m["latency_ms"]["anthropic/nonstream"] == {"n": 5, "p50": 3.0, "p95": 4.8}
    assert m["ttfb_ms"]["anthropic/nonstream"] == {"n": 5, "p50": 0.3, "p95": 0.48}
    assert m["latency_ms"]["zai/stream"] == {"n": 0, "p50": None, "p95": None}


def test_percentiles_1_to_100():
    m = summarize(to_frame([rec(f"r{i}", latency_ms=i) for i in range(1, 101)]))
    assert m["latency_ms"]["anthropic/nonstream"] == {"n": 100, "p50": 50.5, "p95": 95.05}


def test_decisions_and_zai_share(records):
    d = summarize(to_frame(records))["decisions"]
    assert d["counts"] == {"none": 1, "route": 1, "to_anth": 5, "to_zai": 4}
    assert d["shares"]["to_anth"] == pytest.approx(5 / 11, abs=1e-6)
    # routed to zai: z1..z3 and "fail"; decided: every record but the bad request
    assert (d["routed_to_zai"], d["decided"]) == (4, 10)
    assert d["zai_share"] == pytest.approx(0.4)


def test_completions_by_lane(records):
    c = summarize(to_frame(records))["completions_by_lane"]
    # 2xx only: anthropic 5, zai 3 (the 502 is not one), the catalog lane under its own name
    assert c == {"anthropic": 5, "zai": 3, "unknown": 0, "glm": 1}
    none_lane = summarize(to_frame([rec("x", lane=None)]))["completions_by_lane"]
    assert none_lane == {"anthropic": 0, "zai": 0, "unknown": 1}


def test_sse_per_lane(records):
    s = summarize(to_frame(records))["sse"]
    assert list(s) == ["zai"]
    assert s["zai"] == {"streams": 3, "complete": 2, "incomplete": 1, "events": 15, "bytes": 300,
                        "duration_ms_p50": 20.0, "duration_ms_p95": 29.0}


def test_metrics_are_plain_json(records, tmp_path):
    m = summarize(to_frame(records))
    text = json.dumps(m, allow_nan=False)  # raises on NaN
    assert json.loads(text) == m
    path = write_metrics(m, tmp_path / "deep" / "METRICS_x.json")
    assert json.loads(path.read_text()) == m


def test_empty_frame():
    m = summarize(to_frame([]))
    assert m["requests"] == 0 and m["decisions"]["zai_share"] is None
    assert m["completions_by_lane"] == {"anthropic": 0, "zai": 0, "unknown": 0}
    json.dumps(m, allow_nan=False)
    assert "No streaming requests." in render_summary(m, "empty")


def test_render_summary_has_tables(records):
    md = render_summary(summarize(to_frame(records)), "My run")
    assert md.startswith("# My run")
    assert "zai share: **4/10 = 40.0%**" in md
    assert "| anthropic/nonstream | 5 | 3.0 | 4.8 |" in md
    assert "| zai | 3 | 2 | 1 | 15 | 300 |" in md
    assert "| to_anth | 5 |" in md


def test_render_summary_strict_about_missing_keys(records):
    m = summarize(to_frame(records))
    del m["sse"]
    with pytest.raises(Exception, match="sse"):
        render_summary(m, "x")


def test_main_writes_metrics_and_summary(records, tmp_path, capsys):
    logs, results = tmp_path / "logs", tmp_path / "results"
    logs.mkdir()
    (logs / "usage.jsonl.1").write_text("".join(json.dumps(r) + "\n" for r in records[:5]))
    (logs / "usage.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records[5:]) + '{"to')
    assert main([], default_logs_dir=str(logs), default_results_dir=str(results)) == 0
    m = json.loads((results / "METRICS.json").read_text())  # the operators' name
    assert m["requests"] == 11 and m["bad_lines"] == 1
    assert (results / "SUMMARY.md").read_text().startswith("# ")
    assert str(results / "METRICS.json") in capsys.readouterr().out


def test_main_name_and_out(records, tmp_path):
    f = tmp_path / "u.jsonl"
    f.write_text(json.dumps(records[0]) + "\n")
    out = tmp_path / "elsewhere"
    assert main([str(f), "--out", str(out), "--name", "run1"], "unused", "unused") == 0
    assert json.loads((out / "METRICS_run1.json").read_text())["requests"] == 1
    assert (out / "run1-SUMMARY.md").exists()


def test_main_missing_log_is_usage_error(tmp_path, capsys):
    rc = main([str(tmp_path / "missing.jsonl")], "logs", str(tmp_path / "results"))
    assert rc == 2
    assert capsys.readouterr().err.startswith("UsageError: ")
    assert not (tmp_path / "results").exists()
