"""Redaction: secrets out of anything the shim writes to disk (trajectories, partials, bundles).

`redact(obj, secrets)` walks JSON-like data and replaces every occurrence of a secret inside any string
with a marker that keeps only the last four characters (enough to tell keys apart, useless to an
attacker). Credential-bearing keys (`authorization`, `x-api-key`, `api_key`, …) are masked whatever
their value.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

SECRET_KEYS = frozenset(
    {
        "authorization",
        "x-api-key",
        "api_key",
        "apikey",
        "proxy-authorization",
        "session_token",
        "access_token",
        "refresh_token",
    }
)
MIN_SECRET_LEN = 8  # shorter strings are too likely to appear by chance in ordinary text


def mask(secret: str) -> str:
    return f"[REDACTED…{secret[-4:]}]" if len(secret) > 8 else "[REDACTED]"


def redact_text(text: str, secrets: Iterable[str]) -> str:
    for secret in sorted(
        {s for s in secrets if s and len(s) >= MIN_SECRET_LEN}, key=len, reverse=True
    ):
        if secret in text:
            text = text.replace(secret, mask(secret))
    return text


def redact(obj: Any, secrets: Iterable[str]) -> Any:
    """A copy of `obj` with every secret masked (dicts, lists, strings; other values as they are)."""
    secrets = [s for s in secrets if s and len(s) >= MIN_SECRET_LEN]
    return _walk(obj, secrets)


def _walk(obj: Any, secrets: list[str]) -> Any:
    if isinstance(obj, str):
        return redact_text(obj, secrets) if secrets else obj
    if isinstance(obj, dict):
        out = {}
        for key, value in obj.items():
            if (
                isinstance(key, str)
                and key.lower() in SECRET_KEYS
                and isinstance(value, str)
                and value
            ):
                out[key] = mask(value)
            else:
                out[key] = _walk(value, secrets)
        return out
    if isinstance(obj, (list, tuple)):
        return [_walk(v, secrets) for v in obj]
    return obj


class Secret:
    """A credential that never shows itself in logs, reprs or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __repr__(self) -> str:
        return "Secret('**********')" if self._value else "Secret('')"

    __str__ = __repr__
