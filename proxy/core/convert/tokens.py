"""A local token estimate for `POST /v1/messages/count_tokens`, without asking any upstream.

It is an estimate, not a tokenizer: about four characters per token over the system prompt, the
text of every message block (text, thinking, tool inputs and results) and the tool definitions as
JSON, plus a flat `IMAGE_TOKENS` per image. The answer is never below 1. A field of an unexpected
type counts as its JSON text (or not at all, where it is not content): an estimate never refuses.
"""

from __future__ import annotations

import json
import math

CHARS_PER_TOKEN = 4
IMAGE_TOKENS = 1600


def _chars(value: object) -> int:
    """The characters a value counts for: a string's own, any other JSON value's as JSON text."""
    if isinstance(value, str):
        return len(value)
    if not value:
        return 0
    return len(json.dumps(value, separators=(",", ":"), default=str))


def _block_chars(block: object) -> tuple[int, int]:
    """(characters, images) in one content block or string."""
    if isinstance(block, str):
        return len(block), 0
    if not isinstance(block, dict):
        return 0, 0
    kind = block.get("type")
    if kind == "image":
        return 0, 1
    if kind == "text":
        return _chars(block.get("text")), 0
    if kind == "thinking":
        return _chars(block.get("thinking")), 0
    if kind == "tool_use":
        return _chars(block.get("name")) + len(json.dumps(block.get("input") or {}, default=str)), 0
    if kind == "tool_result":
        return _content_chars(block.get("content"))
    return 0, 0


def _content_chars(content: object) -> tuple[int, int]:
    if isinstance(content, list):
        pairs = [_block_chars(b) for b in content]
        return sum(c for c, _ in pairs), sum(i for _, i in pairs)
    return _block_chars(content)


def estimate_tokens(body: dict) -> int:
    """Estimated input tokens of an Anthropic Messages request body (see module doc)."""
    if not isinstance(body, dict):
        return 1
    chars, images = _content_chars(body.get("system"))
    messages = body.get("messages")
    for message in messages if isinstance(messages, list) else ():
        if isinstance(message, dict):
            c, i = _content_chars(message.get("content"))
            chars, images = chars + c, images + i
    if body.get("tools"):
        chars += _chars(body["tools"])
    return max(1, math.ceil(chars / CHARS_PER_TOKEN) + images * IMAGE_TOKENS)
