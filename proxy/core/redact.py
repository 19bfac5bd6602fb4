"""Redaction: secrets out of anything the shim writes to disk (trajectories, partials, bundles).

`redact(obj, secrets)` walks JSON-like data and replaces every occurrence of a secret inside any string
with a marker that keeps only the last four characters (enough to tell keys apart, useless to an
attacker). Credential-bearing keys (`authorization`, `x-api-key`, `api_key`, …) are masked whatever
their value.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from functools import lru_cache
from typing import Any

from proxy.core.jsontext import safe_str

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


def clean_record(rec: dict, secrets: Iterable[str]) -> None:
    """A usage record made fit for every sink, in place: each string in it (the model, the path,
    the client's session header, …: any of them can hold what a client sent) with every secret
    masked, and with lone surrogates as the text of their escape (`safe_str`: a database column
    and a log line must be able to encode it).

    It runs for every request, and almost always finds nothing: each string is tested with one
    regular expression of all the secrets (compiled once per set of secrets), and a nested value
    is rebuilt only when something in it must change."""
    kept = tuple(s for s in secrets if s and len(s) >= MIN_SECRET_LEN)
    find = _finder(kept)
    for key, value in rec.items():
        kind = value.__class__
        if kind is str:
            if value and (not value.isascii() or (find is not None and find(value))):
                rec[key] = _clean_str(value, list(kept))
        elif (kind is dict or kind is list) and _dirty(value, find):
            rec[key] = _clean(value, list(kept))


@lru_cache(maxsize=32)
def _finder(secrets: tuple[str, ...]) -> Callable[[str], object] | None:
    if not secrets:
        return None
    return re.compile("|".join(re.escape(s) for s in secrets)).search


def _dirty(obj: Any, find: Callable[[str], object] | None) -> bool:
    """Whether `obj` holds a string `clean_record` would change (without building anything)."""
    kind = obj.__class__
    if kind is str:
        return not obj.isascii() or (find is not None and find(obj) is not None)
    if kind is dict:
        for k, v in obj.items():
            if _dirty(k, find) or (v.__class__ in _NESTED and _dirty(v, find)):
                return True
    elif kind is list:
        for v in obj:
            if v.__class__ in _NESTED and _dirty(v, find):
                return True
    return False


_NESTED = frozenset((str, dict, list))  # what _dirty looks into (numbers, None: nothing to clean)


def _clean_str(value: str, secrets: list[str]) -> str:
    if not value.isascii():
        value = safe_str(value)
    for secret in secrets:
        if secret in value:
            return redact_text(value, secrets)
    return value


def _clean(obj: Any, secrets: list[str]) -> Any:
    if isinstance(obj, str):
        return _clean_str(obj, secrets)
    if isinstance(obj, dict):
        return {_clean(k, secrets): _clean(v, secrets) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_clean(v, secrets) for v in obj]
    return obj


# The credentials of the request being served (set by the pipeline as it reads them; a request runs
# in its own task, with its own copy): what a log line written meanwhile must not show either.
REQUEST_SECRETS: ContextVar[list[str] | tuple[str, ...]] = ContextVar(
    "ccp_request_secrets", default=()
)


class RedactingFilter(logging.Filter):
    """A log handler's filter that masks every secret in the line it writes: the message, and the
    traceback of an exception (formatted here, then masked: a traceback names values too).
    `secrets()` gives the values to mask (the shim's keys, session tokens, the request's own)."""

    def __init__(self, secrets: Callable[[], Iterable[str]]) -> None:
        super().__init__()
        self._secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = [s for s in self._secrets() if s and len(s) >= MIN_SECRET_LEN]
        if not secrets:
            return True
        message = record.getMessage()
        cleaned = redact_text(message, secrets)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text, secrets)
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info, secrets)
        return True


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
