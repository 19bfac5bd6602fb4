"""Upstream error bodies translated between the protocols; ConversionError's shape."""
import json

import pytest

from proxy.core.convert import (
    ConversionError,
    anthropic_error_to_openai,
    openai_error_to_anthropic,
)

pytestmark = pytest.mark.quick


def _openai_body(message: str) -> bytes:
    return json.dumps({"error": {"message": message, "type": "x", "param": None, "code": None}}).encode()


@pytest.mark.parametrize(("status", "error_type"), [
    (400, "invalid_request_error"), (401, "authentication_error"), (403, "permission_error"),
    (404, "not_found_error"), (413, "request_too_large"), (429, "rate_limit_error"), (500, "api_error"),
    (529, "overloaded_error"), (503, "overloaded_error"), (502, "api_error"), (504, "api_error"),
    (422, "invalid_request_error"), (409, "invalid_request_error"),
])
def test_openai_error_to_anthropic_by_status(status, error_type):
    assert openai_error_to_anthropic(status, _openai_body("Model overloaded, try later")) == (
        status, {"type": "error", "error": {"type": error_type, "message": "Model overloaded, try later"}})


@pytest.mark.parametrize(("body", "message"), [
    (b"<html>Bad Gateway</html>", "upstream returned HTTP 502: <html>Bad Gateway</html>"),
    (b"", "upstream returned HTTP 502"),
    (b'{"error": "plain string"}', "plain string"),
    (b'{"message": "top-level message"}', "top-level message"),
    (b'{"error": {"message": ""}}', 'upstream returned HTTP 502: {"error": {"message": ""}}'),
    (b"[1, 2]", "upstream returned HTTP 502: [1, 2]"),
    (b"\xff\xfe not utf-8", "upstream returned HTTP 502: \ufffd\ufffd not utf-8"),
])
def test_unparseable_bodies_still_give_a_message(body, message):
    status, converted = openai_error_to_anthropic(502, body)
    assert status == 502
    assert converted["error"] == {"type": "api_error", "message": message}


def test_long_non_json_bodies_are_cut_short():
    _, converted = openai_error_to_anthropic(500, b"x" * 5000)
    assert len(converted["error"]["message"]) < 300


@pytest.mark.parametrize(("status", "error_type"), [
    (400, "invalid_request_error"), (401, "authentication_error"), (403, "permission_error"),
    (404, "not_found_error"), (413, "invalid_request_error"), (429, "rate_limit_error"),
    (500, "server_error"), (529, "server_error"),
])
def test_anthropic_error_to_openai(status, error_type):
    body = json.dumps({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}).encode()
    assert anthropic_error_to_openai(status, body) == (
        status, {"error": {"message": "Overloaded", "type": error_type, "param": None, "code": None}})


def test_anthropic_error_to_openai_with_a_non_json_body():
    assert anthropic_error_to_openai(503, b"upstream connect error") == (503, {"error": {
        "message": "upstream returned HTTP 503: upstream connect error", "type": "server_error",
        "param": None, "code": None}})


def test_conversion_error_is_a_value_error_naming_the_field():
    error = ConversionError("messages[3].content", "expected a list")
    assert isinstance(error, ValueError)
    assert error.field == "messages[3].content"
    assert str(error) == "messages[3].content: expected a list"
