"""Ids an Anthropic client can rely on, for answers that come from an OpenAI-protocol provider.

Claude Code merges answers that share a message id, and drops or repeats tool turns whose tool-use
ids collide; Anthropic accepts a tool-use id only when it matches `^[a-zA-Z0-9_-]+$`. Providers
send constant completion ids (or none), tool calls without ids, and ids such as Kimi's
`functions.Bash:0`. So:

- every converted answer gets a fresh `msg_…` id (`new_message_id`), never one derived from the
  provider's;
- a tool call's id (`ToolIds.anthropic_id`) is the provider's own when it is valid and new in the
  answer; a fresh `toolu_01…` id when there is none; and when it is not valid (or repeats within
  the answer), `toolu_ccp_` + a nonce + the provider's id in base64url — valid, unique, and
  reversible without any state: `provider_tool_id()` gives the provider its own id back when the
  next turn's `tool_use`/`tool_result` blocks go out, so results still pair with their calls.

Pure: no I/O, only the `secrets` module's randomness.
"""

from __future__ import annotations

import base64
import re
import secrets

VALID_ID = re.compile(r"^[A-Za-z0-9_-]+$")
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_WRAPPED_PREFIX = "toolu_ccp_"
_NONCE = 8
_WRAPPED = re.compile(r"^toolu_ccp_[A-Za-z0-9]{8}([A-Za-z0-9_-]+)$")


def _random(n: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(n))


def new_message_id() -> str:
    """A fresh Anthropic-style message id (`msg_01` + 22 base62 characters)."""
    return "msg_01" + _random(22)


def new_tool_id() -> str:
    """A fresh Anthropic-style tool-use id (`toolu_01` + 22 base62 characters)."""
    return "toolu_01" + _random(22)


def wrap_tool_id(provider_id: str) -> str:
    """A valid, unique tool-use id that carries `provider_id` (see `provider_tool_id`)."""
    encoded = (
        base64.urlsafe_b64encode(provider_id.encode("utf-8", "surrogatepass"))
        .decode("ascii")
        .rstrip("=")
    )
    return _WRAPPED_PREFIX + _random(_NONCE) + encoded


def provider_tool_id(anthropic_id: object) -> object:
    """The provider's own id inside an id `wrap_tool_id` made; any other value unchanged."""
    if not isinstance(anthropic_id, str) or not anthropic_id.startswith(_WRAPPED_PREFIX):
        return anthropic_id
    match = _WRAPPED.match(anthropic_id)
    if match is None:
        return anthropic_id
    encoded = match.group(1)
    try:
        return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode(
            "utf-8", "surrogatepass"
        )
    except (ValueError, UnicodeDecodeError):
        return anthropic_id


def anthropic_safe_id(provider_id: object) -> str:
    """A request-side id an Anthropic provider accepts, the same one every time for one input
    (an OpenAI client's `functions.Bash:0` in history must pair with its `tool` message)."""
    raw = provider_id if isinstance(provider_id, str) else ""
    if VALID_ID.match(raw):
        return raw
    if not raw:
        return "toolu_oai_empty"
    return "toolu_oai_" + base64.urlsafe_b64encode(raw.encode("utf-8", "surrogatepass")).decode(
        "ascii"
    ).rstrip("=")


class ToolIds:
    """The tool-use ids of one answer: each call gets one id, unique within the answer."""

    __slots__ = ("_used",)

    def __init__(self) -> None:
        self._used: set[str] = set()

    def anthropic_id(self, provider_id: object) -> str:
        raw = provider_id if isinstance(provider_id, str) else ""
        if not raw:
            out = new_tool_id()
        elif VALID_ID.match(raw) and raw not in self._used:
            out = raw
        else:
            out = wrap_tool_id(raw)
        self._used.add(out)
        return out
