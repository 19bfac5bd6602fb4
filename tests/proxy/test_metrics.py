import pytest

from proxy.metrics import Metrics

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
