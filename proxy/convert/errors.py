"""Conversion failures, and upstream error bodies translated between the two protocols.

    ValueError
    └── ConversionError   an input that cannot be converted; the message names the field

`openai_error_to_anthropic()` and `anthropic_error_to_openai()` take an upstream error (status and raw
body) and give the same error in the client's protocol. The status is kept as it was: only the body's
shape and its `type` change. A body that is not the expected JSON still gives a clear message.
"""
from __future__ import annotations

import json

_ANTHROPIC_TYPE_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "overloaded_error",
    529: "overloaded_error",
}

_OPENAI_TYPE_BY_STATUS = {
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
}

_SNIPPET_CHARS = 200


class ConversionError(ValueError):
    """An input that cannot be converted; the message starts with the offending field."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


def anthropic_error_type(status: int) -> str:
    """The Anthropic `error.type` for an HTTP status."""
    if status in _ANTHROPIC_TYPE_BY_STATUS:
        return _ANTHROPIC_TYPE_BY_STATUS[status]
    return "api_error" if status >= 500 else "invalid_request_error"


def openai_error_type(status: int) -> str:
    """The OpenAI `error.type` for an HTTP status (`server_error` for every 5xx)."""
    if status >= 500:
        return "server_error"
    return _OPENAI_TYPE_BY_STATUS.get(status, "invalid_request_error")


def _parse(body: bytes) -> object:
    try:
        return json.loads(body)
    except (ValueError, TypeError):
        return None


def _fallback_message(status: int, body: bytes) -> str:
    text = body.decode("utf-8", "replace").strip() if isinstance(body, (bytes, bytearray)) else ""
    if not text:
        return f"upstream returned HTTP {status}"
    if len(text) > _SNIPPET_CHARS:
        text = text[:_SNIPPET_CHARS] + "…"
    return f"upstream returned HTTP {status}: {text}"


def _message_in(obj: object) -> str | None:
    """`error.message` (or a bare string `error`) inside either protocol's error JSON."""
    if not isinstance(obj, dict):
        return None
    error = obj.get("error")
    if isinstance(error, dict) and isinstance(error.get("message"), str) and error["message"]:
        return error["message"]
    if isinstance(error, str) and error:
        return error
    if isinstance(obj.get("message"), str) and obj["message"]:
        return obj["message"]
    return None


def openai_error_to_anthropic(status: int, body: bytes) -> tuple[int, dict]:
    """An OpenAI-style error response as Anthropic error JSON, with the same status."""
    message = _message_in(_parse(body)) or _fallback_message(status, body)
    return status, {"type": "error", "error": {"type": anthropic_error_type(status), "message": message}}


def anthropic_error_to_openai(status: int, body: bytes) -> tuple[int, dict]:
    """An Anthropic error response as OpenAI error JSON, with the same status."""
    message = _message_in(_parse(body)) or _fallback_message(status, body)
    return status, {"error": {"message": message, "type": openai_error_type(status),
                              "param": None, "code": None}}
