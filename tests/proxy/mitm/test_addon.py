"""The mitm addon on hand-made flows (mitmproxy's own test helpers): which flows go to the
pipeline, how they are pointed at it, and what mitmproxy keeps. What the pipeline then does with a
model call (routing, hygiene, conversion, the record) is the shim's own, tested through both front
doors in scenarios/mitm/test_same_table.py."""
from __future__ import annotations

import json

import pytest
from mitmproxy import http
from mitmproxy.test import tflow

from proxy.config.settings import Settings
from proxy.core.redact import Secret
from proxy.mitm.addon import CcpRouter, FilterChain, parse_filter_chain

pytestmark = pytest.mark.quick

CLIENT_KEY = "sk-ant-client-unit"
HAIKU, SONNET = "claude-haiku-4-5", "claude-sonnet-4-5"
PIPELINE = "http://127.0.0.1:40123"


def _settings(**kw) -> Settings:
    return Settings(persist=False, zai_api_key=Secret("zai-unit-key"),
                    anthropic_base_url="https://anth.test:8443",
                    zai_base_url="https://zai.test/api/anthropic", **kw)


@pytest.fixture
def router():
    return CcpRouter(_settings(), PIPELINE)


def _flow(model: str | None = SONNET, *, url: str = "https://api.anthropic.com/v1/messages?beta=true",
          body: bytes | None = None, method: str = "POST") -> http.HTTPFlow:
    if body is None:
        body = json.dumps({"model": model, "max_tokens": 8,
                           "messages": [{"role": "user", "content": "hi"}]}).encode()
    f = tflow.tflow()
    f.request = http.Request.make(method, url, body, {"content-type": "application/json",
                                                      "x-api-key": CLIENT_KEY})
    return f


def test_parse_filter_chain():
    assert parse_filter_chain("1") == FilterChain(True, "~d api.anthropic.com")
    assert parse_filter_chain("") == parse_filter_chain("on")
    assert parse_filter_chain("0") == FilterChain(False, "")
    assert parse_filter_chain("~d example.com & ~m POST") == FilterChain(True, "~d example.com & ~m POST")
    with pytest.raises(ValueError, match="not a mitmproxy filter expression"):
        parse_filter_chain("~d (")


@pytest.mark.parametrize("model", [HAIKU, SONNET])
def test_a_model_call_goes_to_the_pipeline_as_it_came(router, model):
    f = _flow(model)
    original = (f.request.content, dict(f.request.headers))
    router.request(f)
    assert f.request.url == f"{PIPELINE}/v1/messages?beta=true"
    assert (f.request.content, dict(f.request.headers)) == original  # the pipeline does the rest
    assert f.response is None and router.routed == 1  # mitmproxy sends it on, nothing answered here


def test_a_model_path_under_a_prefix_reaches_the_pipeline_on_its_own_path(router):
    custom = CcpRouter(_settings(mitm_filter_chain="~d gw.example"), PIPELINE)
    f = _flow(url="https://gw.example/anthropic/v1/messages/count_tokens?x=1")
    custom.request(f)
    assert f.request.url == f"{PIPELINE}/v1/messages/count_tokens?x=1"


def test_the_pipeline_answer_is_streamed_on(router):
    f = _flow()
    router.request(f)
    f.response = http.Response.make(200, b"", {"content-type": "text/event-stream"})
    router.responseheaders(f)
    assert f.response.stream is True
    passed = _flow(url="https://example.org/v1/messages")
    router.request(passed)
    passed.response = http.Response.make(200, b"", {})
    router.responseheaders(passed)
    assert passed.response.stream is False  # not ours: mitmproxy's own handling


def test_other_hosts_and_paths(router):
    other = _flow(HAIKU, url="https://example.org/v1/messages")
    router.request(other)
    assert other.request.url == "https://example.org/v1/messages" and not other.metadata
    settings = _flow(None, url="https://api.anthropic.com/api/claude_code/settings", method="GET",
                     body=b"")
    router.request(settings)  # the Anthropic API, not a model call: the anthropic lane, unchanged
    assert settings.request.url == "https://anth.test:8443/api/claude_code/settings"
    assert settings.request.headers["x-api-key"] == CLIENT_KEY and not settings.metadata
    get = _flow(url="https://api.anthropic.com/v1/messages", method="GET", body=b"")
    router.request(get)  # only a POST is a model call
    assert not get.metadata
    assert router.passed == 3 and router.routed == 0


def test_filter_chain_off_touches_nothing():
    off = CcpRouter(_settings(mitm_filter_chain="0"), PIPELINE)
    f = _flow(HAIKU)
    off.request(f)
    assert f.request.url.startswith("https://api.anthropic.com/") and not f.metadata
