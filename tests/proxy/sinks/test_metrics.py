import pytest

from proxy.sinks.metrics import Metrics

pytestmark = pytest.mark.quick


def test_records_feed_the_series():
    m = Metrics()
    m.observe({"lane": "zai", "decision": "to_zai", "op": "stream", "status": 200, "latency_ms": 12.0,
               "ttfb_ms": 3.0, "bytes_in": 100, "bytes_out": 900, "retries": 1, "err_type": None})
    m.observe({"lane": None, "op": None, "status": 400, "err_type": "bad_request", "latency_ms": 1.0})
    text = m.render().decode()
    assert 'ccp_requests_total{decision="to_zai",lane="zai",op="stream",status="200"} 1.0' in text
    assert 'ccp_upstream_errors_total{err_type="bad_request"} 1.0' in text
    assert 'ccp_relayed_bytes_total{direction="out"} 900.0' in text
    assert 'ccp_first_byte_seconds_count{lane="zai",op="stream"} 1.0' in text
    assert "ccp_inflight_streams 0.0" in text and "ccp_upstream_retries_total 1.0" in text


def test_registries_are_separate():
    a, b = Metrics(), Metrics()
    a.rotations.inc()
    assert "ccp_log_rotations_total 1.0" in a.render().decode()
    assert "ccp_log_rotations_total 0.0" in b.render().decode()


def test_exposition_is_prometheus_clients_own_sample_for_sample():
    """The per-request series are plain cells; what /metrics shows must be what prometheus_client's
    own Counter and Histogram show for the same observations (bucket edges, sums, order)."""
    import re

    from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

    from proxy.sinks.metrics import _BUCKETS
    recs = [{"lane": "anthropic", "decision": "default", "op": "nonstream", "status": 200,
             "latency_ms": 1.5, "ttfb_ms": 5.0, "bytes_in": 100, "bytes_out": 50},
            {"lane": "zai", "decision": "haiku", "op": "stream", "status": 502, "latency_ms": 0.0,
             "bytes_in": 10, "err_type": "upstream_5xx"},
            {"status": 404, "latency_ms": 300000.1, "ttfb_ms": 10.0, "err_type": "not_found"}] * 3
    ours = Metrics()
    reg = CollectorRegistry()
    requests = Counter("ccp_requests", "Requests that reached the shim",
                       ("lane", "decision", "op", "status"), registry=reg)
    latency = Histogram("ccp_request_latency_seconds", "Time from request to last byte",
                        ("lane", "op"), buckets=_BUCKETS, registry=reg)
    errors = Counter("ccp_upstream_errors", "Requests that ended with an error", ("err_type",),
                     registry=reg)
    for rec in recs:
        ours.observe(rec)
        lane, op = rec.get("lane") or "none", rec.get("op") or "none"
        requests.labels(lane, rec.get("decision") or "none", op, str(rec["status"])).inc()
        latency.labels(lane, op).observe(rec["latency_ms"] / 1000.0)
        if rec.get("err_type"):
            errors.labels(rec["err_type"]).inc()

    def family(text: str, name: str) -> str:
        text = re.sub(r"(_created\{[^}]*\}) \S+", r"\1 T", text)  # creation times differ
        return "\n".join(line for line in text.splitlines()
                         if re.match(rf"(# \w+ )?{name}(_total|_created|_bucket|_count|_sum)?\b", line))

    mine, theirs = ours.render().decode(), generate_latest(reg).decode()
    for name in ("ccp_requests", "ccp_request_latency_seconds", "ccp_upstream_errors"):
        assert family(mine, name) == family(theirs, name) != ""
    assert 'ccp_request_latency_seconds_bucket{lane="none",le="+Inf",op="none"} 3.0' in mine
    assert 'ccp_request_latency_seconds_bucket{lane="none",le="300.0",op="none"} 0.0' in mine
