"""The Anthropic adapter: URLs, the lane's header hygiene, the error shape."""
import json

import pytest

from proxy.core.headers import LaneCredentials
from proxy.protocols import get

pytestmark = pytest.mark.quick

ANTHROPIC = get("anthropic")


def test_the_url_keeps_the_clients_query_and_counts_tokens_on_its_own_path():
    assert ANTHROPIC.upstream_url("https://a.test", "stream", "beta=true") == \
        "https://a.test/v1/messages?beta=true"
    assert ANTHROPIC.upstream_url("https://a.test", "count_tokens", "") == \
        "https://a.test/v1/messages/count_tokens"
    assert ANTHROPIC.counts_tokens and ANTHROPIC.default_header_mode == "x-api-key"


def test_a_non_anthropic_lane_gets_its_provider_key_and_not_the_clients():
    client = [("x-api-key", "sk-client"), ("anthropic-version", "2023-06-01")]
    zai = ANTHROPIC.request_headers(client, lane="zai", api_key="zai-key",
                                    header_mode="authorization", credentials=LaneCredentials(),
                                    never=frozenset(), profile=None)
    assert zai.get("authorization") == "Bearer zai-key" and "sk-client" not in json.dumps(zai)
    anth = ANTHROPIC.request_headers(client, lane="anthropic", api_key="", header_mode="x-api-key",
                                     credentials=LaneCredentials(), never=frozenset(), profile=None)
    assert anth.get("x-api-key") == "sk-client"


def test_the_error_shape_is_anthropics():
    assert json.loads(ANTHROPIC.error_body("invalid_request_error", "no")) == \
        {"type": "error", "error": {"type": "invalid_request_error", "message": "no"}}


def test_a_cut_stream_is_told_with_an_error_event():
    event = ANTHROPIC.stream_error("api_error", "cut")
    name, data = event.split(b"\n", 1)
    assert name == b"event: error" and event.endswith(b"\n\n")
    assert json.loads(data[6:]) == {"type": "error", "error": {"type": "api_error", "message": "cut"}}
