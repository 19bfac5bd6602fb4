import pytest

from proxy.cli.usage import banner
from proxy.config.quotas import parse_quotas
from proxy.core.record import utc_timestamp
from proxy.sinks.store import connect, insert_records
from proxy.sinks.usage_summary import (
    compact,
    gauge_banner,
    gauge_lines,
    gauge_table,
    span_label,
    usage_summary,
    windows_for,
)

pytestmark = pytest.mark.quick

NOW = 1_800_000_000.0  # 2027-01-15T08:00:00Z
H, D = 3600.0, 86400.0
WINDOWS = {"rolling": 5 * H, "week": 7 * D}
HAIKU, SONNET = "claude-haiku-4-5", "claude-sonnet-4-5"


def rec(rid, ago, lane="zai", model=HAIKU, op="nonstream", status=200, err=None, tin=10, tout=2,
        cache_read=None, cache_write=None, path="/v1/messages"):
    return {"ts": utc_timestamp(NOW - ago), "rid": rid, "path": path, "lane": lane, "model": model,
            "op": op, "status": status, "err_type": err, "in_tokens": tin, "out_tokens": tout,
            "cache_read_tokens": cache_read, "cache_creation_tokens": cache_write}


RECORDS = [
    rec("h1", 60, op="stream", tin=100, tout=20, cache_read=5, cache_write=7),
    rec("h2", 5 * H - 1, tin=10, tout=5),                 # just inside the rolling window
    rec("h3", 5 * H, tin=1000, tout=1),                   # on its edge: the week only
    rec("h4", 3 * D, tin=7, tout=0),
    rec("h5", 7 * D, tin=50_000, tout=0),                  # on the week's edge: nowhere
    rec("h6", -10, tin=9_999, tout=0),                     # after `now`: nowhere
    rec("s1", 120, lane="anthropic", model=SONNET, status=529, err="upstream_5xx", tin=None,
        tout=None),
    rec("s2", 100, lane="anthropic", model=SONNET, op="stream", err="stream_cut", tin=3, tout=4),
    rec("c1", 90, lane="anthropic", model=SONNET, op="count_tokens", tin=0, tout=0),
    # not model requests: an unknown path, a body that was not JSON
    rec("x1", 30, lane=None, model=None, op=None, status=404, err="not_found", tin=None, tout=None,
        path="/nope"),
    rec("x2", 20, lane=None, model=None, op=None, status=400, err="bad_request", tin=None,
        tout=None),
    # a control change (`ccp pause`), e.g. from a usage log imported with `ccp db import`
    rec("k1", 40, lane=None, model=None, op="control", tin=None, tout=None,
        path="/v1/admin/controls"),
]


@pytest.fixture
def summary(tmp_path):
    conn = connect(tmp_path / "ccp.sqlite3")
    with conn:
        insert_records(conn, RECORDS)
    try:
        yield usage_summary(conn, NOW, WINDOWS)
    finally:
        conn.close()


def counts(req, err, tin, tout, cr=0, cw=0):
    return {"requests": req, "errors": err, "in_tokens": tin, "out_tokens": tout,
            "cache_read_tokens": cr, "cache_creation_tokens": cw, "tokens": tin + tout}


def test_rows_per_lane_and_model_over_both_windows(summary):
    assert [(r["lane"], r["model"]) for r in summary["rows"]] == [
        ("anthropic", SONNET), ("zai", HAIKU), (None, None)]
    sonnet, haiku, other = summary["rows"]
    assert haiku["rolling"] == counts(2, 0, 110, 25, 5, 7)
    assert haiku["week"] == counts(4, 0, 1117, 26, 5, 7)
    # a 529 and a stream cut short (status 200, err_type set) are errors; count_tokens is a request
    assert sonnet["rolling"] == sonnet["week"] == counts(3, 2, 3, 4)
    # not model requests (a 404, a bad body, a control change): no request; their errors count
    assert other["rolling"] == other["week"] == counts(0, 2, 0, 0)
    assert summary["total"]["rolling"] == counts(5, 4, 113, 29, 5, 7)
    assert summary["total"]["week"] == counts(7, 4, 1120, 30, 5, 7)
    assert [(lane["lane"], lane["models"], lane["week"]["requests"]) for lane in summary["lanes"]] \
        == [("anthropic", 1, 3), ("zai", 1, 4), (None, 1, 0)]
    assert summary["windows"]["rolling"] == {"span_s": 5 * H, "label": "5h", "since": NOW - 5 * H}
    assert summary["oldest_sample"] == NOW - 7 * D


def test_an_empty_store_has_no_rows(tmp_path):
    conn = connect(tmp_path / "empty.sqlite3")
    summary = usage_summary(conn, NOW, WINDOWS)
    conn.close()
    assert summary["rows"] == [] and summary["total"]["week"] == counts(0, 0, 0, 0)
    assert gauge_table(summary)[1] == [] and gauge_lines(summary)[-1] == "  no usage in the last 7d"
    assert gauge_banner(summary) == "no usage in the last 7d"


def test_windows_follow_the_quotas_rolling_window():
    assert windows_for(parse_quotas(None)) == {"rolling": 5 * H, "week": 7 * D}
    weekly_only = parse_quotas({"haiku": {"weekly": {"tokens": 5}}})
    assert windows_for(weekly_only)["rolling"] == 5 * H
    two = parse_quotas({"haiku": {"rolling": {"window": "2h", "tokens": 5}},
                        "sonnet": {"rolling": {"window": "3h", "tokens": 5}}})
    assert windows_for(two) == {"rolling": 3 * H, "week": 7 * D}
    assert [span_label(s) for s in (5 * H, 7 * D, 90 * 60, 45, 1.5)] == ["5h", "7d", "90m", "45s",
                                                                        "1.5s"]
    assert [compact(n) for n in (999, 1234, 2_500_000)] == ["999", "1.2k", "2.5M"]


def test_table_lines_and_banner(summary):
    header, rows = gauge_table(summary)
    assert header == ["lane", "model", "5h req", "5h err", "5h in", "5h out", "5h cache rd/wr",
                      "7d req", "7d err", "7d in", "7d out", "7d cache rd/wr"]
    assert rows[1] == ["zai", HAIKU, "2", "0", "110", "25", "5/7", "4", "0", "1117", "26", "5/7"]
    assert rows[2][:4] == ["-", "-", "0", "2"]
    assert rows[-1] == ["(all)", "(all)", "5", "4", "113", "29", "5/7", "7", "4", "1120", "30", "5/7"]
    assert len(rows) == 4  # no lane served two models: no lane rows
    lines = gauge_lines(summary)
    assert lines[0] == "fuel gauge (rolling 5h, week 7d):"
    assert f"  zai {HAIKU}: 5h 2 req 0 err 110 in 25 out cache 5 rd 7 wr | 7d 4 req" in lines[2]
    assert lines[3].startswith("  no lane no model: 5h 0 req 2 err")
    assert lines[-1].startswith("  total: 5h 5 req 4 err 113 in 29 out")
    line = gauge_banner(summary)
    assert line == ("anthropic 5h 7 tok 3 req 2 err 7d 7 tok | zai 5h 135 tok 2 req 7d 1.1k tok"
                    " | other 5h 0 tok 0 req 2 err 7d 0 tok")
    # the CLI's banner: without quotas, the fuel gauge; with quotas, the quota meters
    assert banner({"models": {}, "summary": summary}) == "ccp " + line
    assert banner({"models": {}, "summary": None}) == "ccp no quotas configured"
    with_quota = banner({"models": {"haiku": {"rolling_pct": 50.0, "weekly_pct": 5.0}},
                         "summary": summary})
    assert with_quota.startswith("ccp haiku ▕") and "anthropic" not in with_quota


def test_a_lane_with_two_models_gets_a_lane_row(tmp_path):
    conn = connect(tmp_path / "two.sqlite3")
    with conn:
        insert_records(conn, [rec("a", 10), rec("b", 20, model="glm-4.6", tin=1, tout=1)])
    summary = usage_summary(conn, NOW, WINDOWS)
    conn.close()
    rows = gauge_table(summary)[1]
    assert [r[:3] for r in rows] == [["zai", HAIKU, "1"], ["zai", "glm-4.6", "1"],
                                     ["zai", "(all)", "2"], ["(all)", "(all)", "2"]]
    assert "  lane zai: 5h 2 req 0 err 11 in 3 out" in "\n".join(gauge_lines(summary))


def test_each_instance_of_a_fleet_store_has_its_share(tmp_path):
    conn = connect(tmp_path / "ccp.sqlite3")
    with conn:
        insert_records(conn, [rec("a1", 60, tin=10, tout=0)], instance="a")
        insert_records(conn, [rec("b1", 60, tin=20, tout=0), rec("b2", 2 * D, tin=5, tout=0)],
                       instance="b")
    try:
        got = usage_summary(conn, NOW, WINDOWS)["instances"]
    finally:
        conn.close()
    assert [(e["instance"], e["rolling"]["tokens"], e["week"]["tokens"], e["week"]["requests"])
            for e in got] == [("a", 10, 10, 1), ("b", 20, 25, 2)]
