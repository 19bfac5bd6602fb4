"""The one classification of a relayed stream's end."""
import asyncio

import pytest

from proxy.core.errors import UpstreamError
from proxy.core.record import new_record
from proxy.core.sse import SseMeter
from proxy.pipeline.outcome import broken, ended, settle
from proxy.upstream.base import StreamIdle
from tests.proxy.pipeline.test_context import exchange

pytestmark = pytest.mark.quick

COMPLETE = (b'event: message_start\ndata: {"type":"message_start","message":{"usage":'
            b'{"input_tokens":3,"output_tokens":1}}}\n\n'
            b'event: message_stop\ndata: {"type":"message_stop"}\n\n')


@pytest.mark.parametrize("exc, err_type, reason, told", [
    (StreamIdle("quiet"), "idle_timeout", "stream_timeout", "timeout_error"),
    (UpstreamError("reset"), "net", "upstream_reset", "api_error"),
    (ConnectionResetError(), "client_abort", "client_disconnected", None),
    (asyncio.CancelledError(), "client_abort", "client_disconnected", None),
])
def test_what_broke_a_stream(exc, err_type, reason, told):
    rec = new_record("r", "/v1/messages")
    answer = broken(rec, exc)
    assert (rec["err_type"], rec["reason"]) == (err_type, reason)
    assert (answer[0] if answer else None) == told


def test_anything_else_is_not_a_streams_end():
    with pytest.raises(KeyError):
        broken(new_record("r", "/p"), KeyError("bug"))


def test_a_body_that_ends_short_is_incomplete_and_keeps_an_earlier_failure():
    rec = new_record("r", "/p")
    ended(rec, True)
    assert rec["err_type"] is None and rec["reason"] is None
    ended(rec, False)
    assert (rec["err_type"], rec["reason"]) == ("net", "stream_incomplete")
    rec = new_record("r", "/p")
    rec["err_type"] = "upstream_5xx"
    ended(rec, False)
    assert rec["err_type"] == "upstream_5xx"


def test_settle_takes_the_tokens_and_says_streaming(tmp_path):
    ex = exchange(tmp_path)
    meter = SseMeter()
    meter.feed(COMPLETE)
    settle(ex, meter, [COMPLETE], meter.complete)
    assert (ex.rec["in_tokens"], ex.rec["reason"], ex.rec["partial"]) == (3, "streaming", None)


def test_an_in_band_error_is_classified_and_a_broken_stream_keeps_its_partial(tmp_path):
    ex = exchange(tmp_path)
    meter = SseMeter()
    chunk = b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error"}}\n\n'
    meter.feed(chunk)
    settle(ex, meter, [chunk], False)
    assert ex.rec["err_type"] == "upstream_5xx" and ex.rec["reason"] == "sse_error:overloaded_error"
    assert ex.rec["partial"] and (tmp_path / "partials").is_dir()
