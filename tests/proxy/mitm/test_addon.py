"""The mitm addon on hand-made flows (mitmproxy's own test helpers): which flows it takes, how it
rewrites them, and that every routed flow ends in exactly one usage record."""
from __future__ import annotations

import json

import pytest
from mitmproxy import flow as mflow
from mitmproxy import http
from mitmproxy.test import tflow

from harness.mock_wire import message_json, sse_events
from proxy.config.load import load_settings
from proxy.config.settings import Settings
from proxy.core.redact import Secret
from proxy.mitm.addon import CcpRouter, FilterChain, parse_filter_chain
from proxy.pipeline.state import ShimState

pytestmark = pytest.mark.quick

ZAI_KEY, CLIENT_KEY = "zai-unit-key", "sk-ant-client-unit"
HAIKU, SONNET = "claude-haiku-4-5", "claude-sonnet-4-5"


@pytest.fixture
def router(tmp_path):
    settings = Settings(logs_dir=str(tmp_path), persist=False, zai_api_key=Secret(ZAI_KEY),
                        anthropic_base_url="https://anth.test:8443",
                        zai_base_url="https://zai.test/api/anthropic")
    state = ShimState(settings, upstream=None)
    state.open_writer()
    yield CcpRouter(state)
    state.writer.close()


def _records(router) -> list[dict]:
    with open(router.state.writer.path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _flow(model: str | None = SONNET, *, url: str = "https://api.anthropic.com/v1/messages?beta=true",
          body: bytes | None = None, stream: bool = False, method: str = "POST",
          headers: dict | None = None) -> http.HTTPFlow:
    if body is None:
        body = json.dumps({"model": model, "max_tokens": 8, "stream": stream,
                           "messages": [{"role": "user", "content": "hi"}]}).encode()
    hdrs = {"content-type": "application/json", "x-api-key": CLIENT_KEY,
            "anthropic-version": "2023-06-01", **(headers or {})}
    f = tflow.tflow()
    f.request = http.Request.make(method, url, body, hdrs)
    f.request.timestamp_start = f.request.timestamp_end = 1.0
    return f


def _respond(f: http.HTTPFlow, status: int, content: bytes, content_type: str) -> None:
    f.response = http.Response.make(status, content, {"content-type": content_type})


def test_parse_filter_chain():
    assert parse_filter_chain("1") == FilterChain(True, "~d api.anthropic.com")
    assert parse_filter_chain("") == parse_filter_chain("on")
    assert parse_filter_chain("0") == FilterChain(False, "")
    assert parse_filter_chain("~d example.com & ~m POST") == FilterChain(True, "~d example.com & ~m POST")
    with pytest.raises(ValueError, match="not a mitmproxy filter expression"):
        parse_filter_chain("~d (")


def test_haiku_goes_to_zai_with_the_zai_key_only(router):
    f = _flow(HAIKU)
    original = f.request.content
    router.request(f)
    req = f.request
    assert req.url == "https://zai.test/api/anthropic/v1/messages?beta=true"
    assert req.headers["x-api-key"] == ZAI_KEY and "authorization" not in req.headers
    assert req.host_header == "zai.test"
    assert req.content == original and req.headers["content-length"] == str(len(original))
    assert f.response is None  # mitmproxy sends it on


def test_sonnet_keeps_the_clients_own_credential(router):
    f = _flow(SONNET, headers={"authorization": f"Bearer {ZAI_KEY}"})  # a foreign key is dropped
    router.request(f)
    assert f.request.url == "https://anth.test:8443/v1/messages?beta=true"
    assert f.request.headers["x-api-key"] == CLIENT_KEY
    assert "authorization" not in f.request.headers
    assert f.request.host_header == "anth.test:8443"


def test_other_hosts_and_paths(router):
    other = _flow(HAIKU, url="https://example.org/v1/messages")
    router.request(other)
    assert other.request.url == "https://example.org/v1/messages" and not other.metadata
    assert other.request.headers["x-api-key"] == CLIENT_KEY
    settings = _flow(None, url="https://api.anthropic.com/api/claude_code/settings", method="GET",
                     body=b"")
    router.request(settings)  # the Anthropic API, not a model call: the anthropic lane, unchanged
    assert settings.request.url == "https://anth.test:8443/api/claude_code/settings"
    assert settings.request.headers["x-api-key"] == CLIENT_KEY and not settings.metadata
    assert router.passed == 2


def test_filter_chain_off_touches_nothing(tmp_path):
    settings = Settings(logs_dir=str(tmp_path), persist=False, mitm_filter_chain="0")
    off = CcpRouter(ShimState(settings, upstream=None))
    f = _flow(HAIKU)
    off.request(f)
    assert f.request.url.startswith("https://api.anthropic.com/") and not f.metadata


def test_nonstream_answer_is_recorded_once(router):
    f = _flow(HAIKU)
    router.request(f)
    _respond(f, 200, json.dumps(message_json(HAIKU, "hi", 12, 3)).encode(), "application/json")
    f.response.http_version = "HTTP/2.0"
    router.responseheaders(f)
    assert f.response.headers["x-ccp-lane"] == "zai" and f.response.stream is False
    router.response(f)
    router.error(f)  # a late error after the response: no second record
    [rec] = _records(router)
    assert (rec["lane"], rec["decision"], rec["status"], rec["op"]) == ("zai", "to_zai", 200, "nonstream")
    assert (rec["in_tokens"], rec["out_tokens"], rec["h2"]) == (12, 3, True)
    assert rec["header_mode"] == "x-api-key" and rec["upstream"] == "zai.test"
    assert f.response.headers["x-ccp-request-id"] == rec["rid"]


def test_stream_is_tapped_byte_for_byte(router):
    f = _flow(SONNET, stream=True)
    router.request(f)
    events = sse_events(SONNET, "hello there", 3, 9)
    _respond(f, 200, b"", "text/event-stream")
    router.responseheaders(f)
    tap = f.response.stream
    assert callable(tap)
    relayed = [tap(e) for e in events] + [tap(b"")]
    assert b"".join(relayed) == b"".join(events)
    router.response(f)
    [rec] = _records(router)
    assert rec["sse"]["complete"] is True and rec["sse"]["events"] == len(events)
    assert rec["bytes_out"] == len(b"".join(events)) and rec["reason"] == "streaming"
    assert rec["in_tokens"] == 9 and rec["ttfb_ms"] is not None
    assert router.state.metrics.inflight_streams.value == 0


@pytest.mark.parametrize("message, err_type", [("Client disconnected.", "client_abort"),
                                               ("server closed connection", "net")])
def test_a_broken_stream_is_accounted(router, message, err_type):
    f = _flow(SONNET, stream=True)
    router.request(f)
    _respond(f, 200, b"", "text/event-stream")
    router.responseheaders(f)
    for event in sse_events(SONNET, "cut short", 5, 9)[:3]:
        f.response.stream(event)
    f.error = mflow.Error(message)
    router.error(f)
    router.response(f)  # no second record
    [rec] = _records(router)
    assert rec["err_type"] == err_type and rec["sse"]["complete"] is False
    assert rec["partial"]  # what was relayed is kept under logs/partials
    with open(rec["partial"], "rb") as fh:
        assert CLIENT_KEY.encode() not in fh.read()


def test_no_answer_from_the_upstream(router):
    f = _flow(SONNET)
    router.request(f)
    f.error = mflow.Error("Connection refused")
    router.error(f)
    [rec] = _records(router)
    assert (rec["status"], rec["err_type"], rec["lane"]) == (502, "net", "anthropic")


@pytest.mark.parametrize("body, content_type, status", [
    (b'{"model": ', "application/json", 400), (b'{"messages": []}', "application/json", 400),
    (b"[]", "application/json", 400), (b'{"model": "m"}', "text/plain", 415)])
def test_bad_input_is_answered_in_the_anthropic_shape(router, body, content_type, status):
    f = _flow(body=body, headers={"content-type": content_type})
    router.request(f)
    assert f.response.status_code == status
    error = json.loads(f.response.content)
    assert error["type"] == "error" and error["error"]["message"]
    router.responseheaders(f)
    router.response(f)
    [rec] = _records(router)
    assert (rec["status"], rec["err_type"]) == (status, "bad_request")
    assert f.response.headers["x-ccp-request-id"] == rec["rid"]


def test_an_openai_route_is_refused_not_converted(tmp_path):
    cfg = tmp_path / "routes.yaml"
    cfg.write_text("routes:\n  - name: glm-4.6\n    protocol: openai\n"
                   "    base_url: https://glm.test/v1\n    api_key: glm-key\n")
    settings = load_settings({"CCP_CONFIG": str(cfg), "CCP_LOGS_DIR": str(tmp_path),
                                  "CCP_PERSIST": "0", "HOME": str(tmp_path)})
    state = ShimState(settings, upstream=None)
    state.open_writer()
    router = CcpRouter(state)
    f = _flow("glm-4.6")
    router.request(f)
    assert f.response.status_code == 501 and "does not convert" in f.response.text
    router.response(f)
    [rec] = _records(router)
    assert (rec["decision"], rec["protocol_out"], rec["status"]) == ("route", "openai", 501)
    assert f.request.host == "api.anthropic.com"  # not sent anywhere


def test_body_tee_is_redacted_and_off_by_default(tmp_path, router):
    f = _flow(HAIKU)
    router.request(f)
    _respond(f, 200, json.dumps(message_json(HAIKU, "hi", 1, 1)).encode(), "application/json")
    router.response(f)
    assert not (tmp_path / "tee").exists()
    settings = Settings(logs_dir=str(tmp_path / "on"), persist=False, body_tee=True,
                        zai_api_key=Secret(ZAI_KEY), zai_base_url="https://zai.test/api/anthropic")
    state = ShimState(settings, upstream=None)
    state.open_writer()
    teeing = CcpRouter(state)
    f = _flow(HAIKU, body=json.dumps({"model": HAIKU, "max_tokens": 8, "messages": [
        {"role": "user", "content": f"my key is {CLIENT_KEY}"}]}).encode())
    teeing.request(f)
    _respond(f, 200, json.dumps(message_json(HAIKU, "hi", 1, 1)).encode(), "application/json")
    teeing.response(f)
    [sample] = (tmp_path / "on" / "tee").iterdir()
    text = sample.read_text()
    assert "my key is" in text and CLIENT_KEY not in text and ZAI_KEY not in text


def test_a_rewritten_body_keeps_every_value_exactly(tmp_path):
    """A manual override renames the model: the body is written again, big integers intact."""
    settings = Settings(logs_dir=str(tmp_path), persist=False, model_override="claude-opus-4-1",
                        anthropic_base_url="https://anth.test")
    router = CcpRouter(ShimState(settings, upstream=None))
    body = (b'{"model": "claude-sonnet-4-5", "max_tokens": 8, "metadata": {"n": '
            b'123456789012345678901234567890}, "messages": [{"role": "user", "content": "hi"}]}')
    f = _flow(body=body)
    router.request(f)
    sent = json.loads(f.request.content)
    assert sent["model"] == "claude-opus-4-1" and sent["metadata"]["n"] == 123456789012345678901234567890
    assert f.request.headers["content-length"] == str(len(f.request.content))
    assert f.metadata["ccp"].rec["rewrites"] == ["model"]
