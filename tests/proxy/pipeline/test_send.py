"""Sending: one attempt by default, backoff on 429/503 when asked, and the fallback lane once."""
import asyncio

import pytest

from proxy.core.errors import UpstreamError
from proxy.core.routing import Decision
from proxy.pipeline.send import send
from proxy.upstream.base import UpstreamRequest
from tests.proxy.pipeline.test_context import exchange
from tests.proxy.pipeline.test_run import FakeResponse, FakeUpstream

pytestmark = pytest.mark.quick

REQ = UpstreamRequest("POST", "http://zai.test/v1/messages", {}, b"{}", False)


def _send(ex, upstream, decision=Decision("zai", "zai", "m", "to_zai")):
    ex.state.upstream = upstream
    provider = ex.settings.catalog.provider(decision.provider)
    prepared = []

    def prepare(p, lane, model):
        prepared.append((p.name, lane, model))
        return UpstreamRequest("POST", f"http://{p.name}.test/v1/messages", {}, b"{}", False)
    return asyncio.run(send(ex, REQ, decision, provider, prepare)), prepared


def test_one_attempt_by_default(tmp_path):
    ex = exchange(tmp_path)
    (resp, decision, provider), prepared = _send(ex, FakeUpstream(FakeResponse(503, b"")))
    assert resp.status == 503 and decision.lane == "zai" and not prepared
    assert ex.rec["retries"] == 0


def test_a_dead_lane_falls_back_once_and_the_record_says_why(tmp_path):
    ex = exchange(tmp_path, fallback_lane="anthropic")
    ex.rec["model"] = "m"
    upstream = FakeUpstream(UpstreamError("refused"), FakeResponse(200, b"{}"))
    (resp, decision, provider), prepared = _send(ex, upstream)
    assert resp.status == 200 and decision.reason == "fallback" and provider.name == "anthropic"
    assert prepared == [("anthropic", "anthropic", "m")]
    assert (ex.rec["lane"], ex.rec["decision"], ex.rec["reason"]) == \
        ("anthropic", "fallback", "fallback:net")
    assert "header_mode" not in ex.rec


def test_without_a_fallback_lane_the_failure_goes_up(tmp_path):
    ex = exchange(tmp_path, enable_backoff=True)
    with pytest.raises(UpstreamError):
        _send(ex, FakeUpstream(UpstreamError("refused")))
