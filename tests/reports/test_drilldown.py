"""reports.drilldown: time buckets, errors per bucket, the slowest and the failed requests."""
import pytest

from reports.drilldown import (
    failures,
    is_error,
    is_incomplete,
    per_bucket,
    problem,
    slowest,
    time_buckets,
    width_text,
)

pytestmark = pytest.mark.quick


def rec(rid, minute, lane="anthropic", status=200, **kw):
    base = {"rid": rid, "ts": f"2026-11-25T13:{minute:02d}:30.000Z", "lane": lane, "op": "nonstream",
            "status": status, "err_type": None, "reason": None, "sse": None, "partial": None,
            "model": "claude-sonnet-4-5", "latency_ms": 10.0, "ttfb_ms": 1.0}
    base.update(kw)
    return base


def test_buckets_have_a_nice_width_and_cover_every_timed_record():
    records = [rec(f"r{m}", m) for m in range(0, 60, 3)] + [rec("no-ts", 0, ts=None)]
    b = time_buckets(records)
    assert b.width_s == 300  # 57 min in at most 24 buckets: 2.4 min, rounded up to a nice 5
    assert b.labels[0] == "13:00" and b.labels[-1] == "13:55" and len(b.labels) == 12
    assert b.index[-1] is None and sorted(set(b.index[:-1])) == list(range(12))
    assert b.index[:3] == [0, 0, 1]  # 13:00:30 and 13:03:30 in the first, 13:06:30 in the second
    assert (b.start, b.end) == ("2026-11-25T13:00:30Z", "2026-11-25T13:57:30Z")
    assert width_text(300) == "5 min" and width_text(7200) == "2 h" and width_text(15) == "15 s"


def test_buckets_across_days_show_the_date_and_empty_input_has_none():
    b = time_buckets([rec("a", 0), rec("b", 0, ts="2026-11-27T09:00:00.000Z")])
    assert b.width_s == 7200 and b.labels[0] == "11-25 12:00"
    assert time_buckets([]).labels == [] and time_buckets([rec("x", 0, ts="garbage")]).index == [None]


def test_errors_per_bucket_by_lane():
    records = [rec("ok", 0), rec("e1", 0, status=502, err_type="upstream_5xx"),
               rec("e2", 10, lane="zai", status=429), rec("e3", 10, lane=None, status=200,
                                                           err_type="client_abort")]
    b = time_buckets(records)
    counts = per_bucket(records, b, is_error)
    assert {lane: sum(c) for lane, c in counts.items()} == {"anthropic": 1, "none": 1, "zai": 1}
    assert counts["anthropic"][0] == 1 and counts["zai"][b.index[2]] == 1
    assert sum(map(sum, per_bucket(records, b).values())) == 4


def test_error_and_incomplete_rules():
    assert not is_error(rec("a", 0)) and is_error(rec("b", 0, status=None))
    assert is_error(rec("c", 0, status=404)) and is_error(rec("d", 0, err_type="client_abort"))
    done = {"events": 3, "bytes": 9, "duration_ms": 1.0, "complete": True}
    assert not is_incomplete(rec("s", 0, op="stream", sse=done))
    assert is_incomplete(rec("s", 0, op="stream", sse={**done, "complete": False}))
    assert is_incomplete(rec("s", 0, op="stream", sse=None))
    assert is_incomplete(rec("p", 0, partial="logs/partials/p.partial"))
    assert problem(rec("x", 0, op="stream", status=502, err_type="upstream_5xx")) == \
        "HTTP 502, upstream_5xx, incomplete stream"


def test_slowest_first_ties_by_rid_and_untimed_skipped():
    records = [rec("b", 0, latency_ms=50.0), rec("a", 0, latency_ms=50.0), rec("c", 0, latency_ms=900.0),
               rec("none", 0, latency_ms=None), rec("d", 0, latency_ms=1.0)]
    rows = slowest(records, n=3)
    assert [r["rid"] for r in rows] == ["c", "a", "b"]
    assert rows[0] == {"rid": "c", "ts": "2026-11-25T13:00:30.000Z", "model": "claude-sonnet-4-5",
                       "lane": "anthropic", "op": "nonstream", "status": 200, "latency_ms": 900.0,
                       "ttfb_ms": 1.0}


def test_failures_lists_every_non_2xx_or_incomplete_with_reason_and_partial():
    records = [rec("ok", 0),
               rec("e", 1, lane="zai", status=503, err_type="upstream_5xx", reason="overloaded"),
               rec("cut", 2, op="stream", status=200, err_type="client_abort", reason="client_closed",
                   partial="logs/partials/cut.partial",
                   sse={"events": 2, "bytes": 10, "duration_ms": 3.0, "complete": False}),
               rec("ok2", 3)]
    rows = failures(records)
    assert [r["rid"] for r in rows] == ["e", "cut"]
    assert rows[0]["lane"] == "zai" and rows[0]["reason"] == "overloaded" and rows[0]["status"] == 503
    assert rows[1]["partial"] == "logs/partials/cut.partial"
    assert rows[1]["problem"] == "client_abort, incomplete stream"
