"""Conversion failures, and upstream error bodies translated between the two protocols.

    ValueError
    └── ConversionError   an input that cannot be converted; the message names the field

`openai_error_to_anthropic()` and `anthropic_error_to_openai()` take an upstream error (status and raw
body) and give the same error in the client's protocol. The status is kept as it was: only the body's
shape and its `type` change. A body that is not the expected JSON still gives a clear message.

Two provider errors are not errors on Anthropic's side:
- `is_max_tokens_error()`: OpenAI's reasoning models answer a request they cannot finish within
  `max_tokens` (Claude Code's `max_tokens: 1` availability probe) with a 400 "Could not finish the
  message because max_tokens or model output limit was reached"; Anthropic answers such a request
  200 with `stop_reason: "max_tokens"`, so the shim does too (`max_tokens_message()`).
- `inband_error()`: an error object inside a 200 stream; when it carries an HTTP status (`code` or
  `status`, e.g. OpenRouter's `{"error": {"code": 429, …}}`), it is typed by that status.
"""

from __future__ import annotations

import json
import re

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


_MAX_TOKENS_ERROR = re.compile(
    r"could not finish the message because max_tokens|max_tokens or model output limit", re.I
)


def is_max_tokens_error(status: int, body: bytes) -> bool:
    """Whether an OpenAI-protocol 400 means "could not finish within max_tokens"."""
    if status != 400 or not body or len(body) > 64 * 1024:
        return False
    message = _message_in(_parse(body))
    return bool(message and _MAX_TOKENS_ERROR.search(message))


def max_tokens_message(message_id: str, model: str) -> dict:
    """What Anthropic answers a request that hit `max_tokens` before any content: an empty message."""
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": "max_tokens",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 0,
            "output_tokens": 0,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        },
    }


def _status_in(error: dict) -> int | None:
    for key in ("status", "code", "status_code"):
        value = error.get(key)
        if isinstance(value, str) and value.isdigit():
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool) and 400 <= value <= 599:
            return value
    return None


def inband_error(error: object) -> tuple[str, str]:
    """(message, Anthropic error type) for an error object a provider put inside a stream."""
    if isinstance(error, dict):
        message = error.get("message") if isinstance(error.get("message"), str) else ""
        status = _status_in(error)
        kind = anthropic_error_type(status) if status else "api_error"
        return message or json.dumps(error)[:_SNIPPET_CHARS], kind
    return str(error)[:_SNIPPET_CHARS] or "upstream error", "api_error"


def inband_error_type(error: object) -> str:
    """inband_error()'s Anthropic error type alone."""
    return inband_error(error)[1]


def openai_error_to_anthropic(status: int, body: bytes) -> tuple[int, dict]:
    """An OpenAI-style error response as Anthropic error JSON, with the same status."""
    message = _message_in(_parse(body)) or _fallback_message(status, body)
    return status, {
        "type": "error",
        "error": {"type": anthropic_error_type(status), "message": message},
    }


def anthropic_error_to_openai(status: int, body: bytes) -> tuple[int, dict]:
    """An Anthropic error response as OpenAI error JSON, with the same status."""
    message = _message_in(_parse(body)) or _fallback_message(status, body)
    return status, {
        "error": {
            "message": message,
            "type": openai_error_type(status),
            "param": None,
            "code": None,
        }
    }
