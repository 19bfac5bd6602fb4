"""The pipeline end to end on fakes of its three edges (the request, the client, the upstream): the
order of the steps, and exactly one record whatever happened."""
import asyncio
import json

import pytest
from multidict import CIMultiDict

from proxy.core.errors import BadRequest, InternalError, UpstreamError
from proxy.pipeline.run import run, start
from proxy.upstream.fake import FakeResponse, FakeUpstream
from tests.proxy.pipeline.test_context import exchange

pytestmark = pytest.mark.quick

MESSAGE = json.dumps({"id": "msg_1", "type": "message", "role": "assistant", "model": "m",
                      "content": [{"type": "text", "text": "hi"}], "stop_reason": "end_turn",
                      "usage": {"input_tokens": 7, "output_tokens": 2}}).encode()


class FakeInbound:
    def __init__(self, body: bytes, path="/v1/messages", content_type="application/json"):
        self.path, self.query_string, self.content_type = path, "", content_type
        self.headers = CIMultiDict({"x-api-key": "sk-client-key"})
        self._body = body

    async def read_body(self, max_bytes):
        return self._body


class FakeDownstream:
    def __init__(self):
        self.status = self.body = None
        self.chunks = []

    def whole(self, status, body, headers, content_type=None):
        self.status, self.body = status, body

    async def open_stream(self, status, headers, first_chunk_ready, content_type=None):
        self.status = status

    async def write(self, chunk):
        self.chunks.append(chunk)

    async def write_last(self, chunk):
        self.chunks.append(chunk)

    async def end(self):
        pass


def _run(ex, inbound, upstream):
    ex.state.upstream = upstream
    records = []
    ex.state.record = records.append
    down = FakeDownstream()

    async def go():
        await run(ex, inbound, down)
    try:
        asyncio.run(go())
        return down, records, None
    except Exception as exc:  # noqa: BLE001 - the test looks at it
        return down, records, exc


def _body(model="claude-sonnet-4-5", **extra):
    return json.dumps({"model": model, "max_tokens": 5,
                       "messages": [{"role": "user", "content": "hi"}], **extra}).encode()


def test_a_request_goes_prepare_send_relay_finish_into_one_record(tmp_path):
    ex = exchange(tmp_path)
    upstream = FakeUpstream(FakeResponse(200, chunks=[MESSAGE]))
    down, records, exc = _run(ex, FakeInbound(_body()), upstream)
    assert exc is None and down.status == 200 and down.body == MESSAGE
    [sent] = upstream.requests
    assert sent.url.endswith("/v1/messages") and sent.body == _body()  # forwarded as it came
    [rec] = records
    assert (rec["lane"], rec["decision"], rec["status"], rec["in_tokens"]) == \
        ("anthropic", "to_anth", 200, 7)
    assert rec["latency_ms"] is not None and rec["overhead_ms"] is not None


def test_bad_input_is_raised_for_the_front_door_and_still_recorded(tmp_path):
    ex = exchange(tmp_path)
    upstream = FakeUpstream()
    _, records, exc = _run(ex, FakeInbound(b'{"model": '), upstream)
    assert isinstance(exc, BadRequest) and not upstream.requests
    [rec] = records
    assert (rec["status"], rec["err_type"]) == (400, "bad_request")


def test_an_upstream_failure_is_recorded_once(tmp_path):
    ex = exchange(tmp_path)
    _, records, exc = _run(ex, FakeInbound(_body()), FakeUpstream(UpstreamError("refused")))
    assert isinstance(exc, UpstreamError)
    [rec] = records
    assert (rec["status"], rec["err_type"]) == (502, "net")


def test_a_bug_is_an_internal_error_in_the_protocols_shape(tmp_path):
    ex = exchange(tmp_path)
    _, records, exc = _run(ex, FakeInbound(_body()), FakeUpstream(ZeroDivisionError()))
    assert isinstance(exc, InternalError) and "ZeroDivisionError" in exc.message
    assert records[0]["err_type"] == "internal" and records[0]["status"] == 500


def test_count_tokens_without_a_provider_endpoint_is_a_local_estimate(tmp_path):
    ex = exchange(tmp_path, "/v1/messages/count_tokens",
                  providers_file=None)
    ex.state.settings = ex.settings  # (unchanged; the route decides by the built-in lanes)
    upstream = FakeUpstream(FakeResponse(200, chunks=[b'{"input_tokens": 3}']))
    down, records, exc = _run(ex, FakeInbound(_body(), path="/v1/messages/count_tokens"), upstream)
    assert exc is None and records[0]["op"] == "count_tokens"
    assert json.loads(down.body)["input_tokens"] == 3  # the anthropic lane answers it itself
    assert upstream.requests[0].url.endswith("/v1/messages/count_tokens")


def test_start_reads_the_protocol_and_the_cli_session_from_the_request(tmp_path):
    state = exchange(tmp_path).state
    ex = start(state, "/v1/chat/completions", {"x-claude-code-session-id": "s-1"})
    assert ex.protocol_in.name == "openai" and ex.rec["protocol_in"] == "openai"
    assert ex.rec["client_session"] == "s-1"
