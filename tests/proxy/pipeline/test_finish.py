"""The record's last fields, the trajectory answer and the one write."""
import time

import pytest

from proxy.pipeline.finish import finish
from tests.proxy.pipeline.test_context import exchange

pytestmark = pytest.mark.quick


def _finished(ex):
    written = []
    ex.state.record = written.append
    finish(ex)
    return written


def test_the_overhead_is_the_shims_own_time(tmp_path):
    ex = exchange(tmp_path)
    ex.t0 = time.perf_counter() - 1.0
    ex.sent = ex.t0 + 0.010  # 10 ms to send
    ex.upstream_done = time.perf_counter()  # then the upstream's time, not ours
    [rec] = _finished(ex)
    assert rec["latency_ms"] >= 1000 and 9 <= rec["overhead_ms"] < 200


def test_a_request_that_never_left_is_all_overhead_and_recorded_once(tmp_path):
    ex = exchange(tmp_path)
    ex.rec["status"] = 400
    [rec] = _finished(ex)
    assert rec["overhead_ms"] == rec["latency_ms"] and rec["ttfb_ms"] == rec["latency_ms"]


def test_a_client_that_left_has_no_ttfb(tmp_path):
    ex = exchange(tmp_path)
    ex.rec["status"] = 499
    [rec] = _finished(ex)
    assert rec["ttfb_ms"] is None


@pytest.mark.parametrize("op", ["stream", "nonstream", "count_tokens"])
def test_every_request_has_exactly_one_record_a_stream_too(tmp_path, op):
    ex = exchange(tmp_path)
    ex.rec["op"], ex.rec["status"] = op, 200
    written = _finished(ex)
    assert len(written) == 1 and written[0] is ex.rec


def test_a_failed_exchange_of_a_session_still_writes_its_answer_half(tmp_path):
    import json

    from proxy.pipeline.finish import write_query
    ex = exchange(tmp_path)
    session = ex.state.sessions.register("tok-12345678", "box-1", "task")
    ex.session, ex.rec["session"] = session, session.id
    ex.rec.update(lane="anthropic", provider="anthropic", model="m", upstream_model="m")
    write_query(ex, {"model": "m"})
    ex.rec["status"], ex.rec["err_type"], ex.rec["reason"] = 502, "net", "upstream_reset"
    _finished(ex)
    [answer] = (tmp_path / "trajectory" / session.id / "answer").glob("*.json")
    data = json.loads(answer.read_text())
    assert (data["rid"], data["err_type"], data["status"]) == (ex.rec["rid"], "net", 502)
    assert data["upstream_response"] is None
