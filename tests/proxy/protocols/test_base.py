"""Conversion: a client protocol joined to a provider protocol through the Anthropic pivot."""
import json

import pytest

from proxy import protocols
from proxy.core.convert import ConversionError
from proxy.protocols.base import Conversion, ProtocolAdapter

pytestmark = pytest.mark.quick

REQUEST = {"model": "m", "max_tokens": 5, "system": "s",
           "messages": [{"role": "user", "content": "hi"}]}


def test_the_same_protocol_on_both_sides_is_a_passthrough():
    assert protocols.conversion("anthropic", "anthropic") is None
    assert protocols.conversion("openai", "openai") is None


def test_an_anthropic_client_on_an_openai_provider_converts_there_and_back():
    conv = protocols.conversion("anthropic", "openai")
    assert conv.meter_downstream  # the client's side is Anthropic's: the meter reads it
    out, body = conv.request(REQUEST, None, "up-m", {})
    assert out["model"] == "up-m" and out["messages"][0] == {"role": "system", "content": "s"}
    assert json.loads(body) == json.loads(json.dumps(out))
    answer = {"id": "c1", "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"},
                                       "finish_reason": "stop"}],
              "usage": {"prompt_tokens": 3, "completion_tokens": 1}}
    message = conv.answer(answer, "m", None, None)
    assert message["type"] == "message" and message["content"][0]["text"] == "hi"
    assert conv.tokens(answer, message)["in_tokens"] == 3
    assert conv.as_stream(True) is not None and conv.as_stream(False) is None


def test_an_openai_client_on_an_anthropic_provider_converts_the_other_way():
    conv = protocols.conversion("openai", "anthropic")
    assert not conv.meter_downstream  # the upstream's side is Anthropic's
    out, _ = conv.request({"model": "m", "messages": [{"role": "user", "content": "hi"}]}, None,
                          "claude-x", {})
    assert out["model"] == "claude-x" and out["messages"][0]["role"] == "user"
    message = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
               "content": [{"type": "text", "text": "yo"}], "stop_reason": "end_turn",
               "usage": {"input_tokens": 4, "output_tokens": 2}}
    completion = conv.answer(message, "m", None, None)
    assert completion["choices"][0]["message"]["content"] == "yo"
    assert conv.tokens(message, completion)["out_tokens"] == 2
    status, error = conv.error(429, b'{"type":"error","error":{"type":"rate_limit_error",'
                                    b'"message":"slow"}}')
    assert status == 429 and error["error"]["message"] == "slow"
    assert conv.recover(400, b"{}", "m") is None and conv.as_stream(True) is None


def test_two_protocols_that_are_not_the_pivot_are_not_joined():
    class Other(ProtocolAdapter):
        name = "other"

    with pytest.raises(ConversionError, match="one side must be anthropic"):
        Conversion(Other(), protocols.get("openai"))


def test_an_adapter_says_what_it_does_not_do():
    with pytest.raises(NotImplementedError):
        ProtocolAdapter().request_to_anthropic({}, "m")
