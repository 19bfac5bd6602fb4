"""The OpenAI Chat Completions adapter: URL, headers, error shape, and the conversions."""
import json

import pytest

from proxy.protocols import get

pytestmark = pytest.mark.quick

OPENAI = get("openai")
BODY = b'{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}'


def test_url_and_headers_are_the_providers_own():
    assert OPENAI.upstream_url("https://o.test/v1", "stream", "beta=true") == \
        "https://o.test/v1/chat/completions"
    headers = OPENAI.request_headers([("x-api-key", "sk-client")], lane="glm", api_key="k",
                                     header_mode="authorization", credentials=None,
                                     never=frozenset(), profile=None)
    assert headers["authorization"] == "Bearer k" and "x-api-key" not in headers
    assert not OPENAI.counts_tokens and OPENAI.paths == ("/v1/chat/completions",)


def test_the_error_shape_is_openais():
    assert json.loads(OPENAI.error_body("invalid_request_error", "no"))["error"] == \
        {"message": "no", "type": "invalid_request_error", "param": None, "code": None}


def test_a_request_from_the_bytes_and_from_the_payload_agree():
    from_bytes, raw = OPENAI.request_from_anthropic(None, BODY, "up", {})
    from_payload, _ = OPENAI.request_from_anthropic(json.loads(BODY), None, "up", {})
    assert json.loads(raw) == json.loads(json.dumps(from_payload))
    assert from_bytes["model"] == "up"


def test_a_max_tokens_400_is_recovered_as_an_anthropic_message():
    body = json.dumps({"error": {"message": "Could not finish the message because max_tokens or "
                                            "model output limit was reached.",
                                 "type": "invalid_request_error"}}).encode()
    message = OPENAI.recover_to_anthropic(400, body, "m")
    assert message is not None and message["stop_reason"] == "max_tokens"
    assert OPENAI.recover_to_anthropic(400, b'{"error":{"message":"other"}}', "m") is None


def test_streams_convert_both_ways():
    to = OPENAI.stream_to_anthropic("m", None, None)
    out = to.feed(b'data: {"id":"c","choices":[{"index":0,"delta":{"content":"hi"},'
                  b'"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n') + to.finish()
    assert b"event: message_start" in out and b"message_stop" in out and to.complete
    back = OPENAI.stream_from_anthropic("m", 1)
    assert hasattr(back, "feed") and hasattr(back, "finish")


def test_a_cut_stream_is_told_with_an_error_data_line_and_no_done():
    event = OPENAI.stream_error("api_error", "cut")
    assert event.startswith(b"data: ") and event.endswith(b"\n\n") and b"[DONE]" not in event
    assert json.loads(event[6:])["error"] == {"message": "cut", "type": "api_error", "param": None,
                                              "code": None}
