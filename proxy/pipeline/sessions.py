"""Sandbox sessions: which inbound token belongs to which (sandbox, task), and its trajectory folder.

A harness registers `(session_token, sandbox_id, task_name)` before a sandboxed agent starts; any model
request whose `authorization: Bearer` or `x-api-key` equals that token belongs to the session. The
token is the sandbox's only credential: it is accepted from the client, mapped here, and never
forwarded upstream. A session's id is safe as a folder name (`logs/trajectory/<id>/`).
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from proxy.core.headers import bearer_value

_SLUG_RE = re.compile(r"[^a-z0-9]+")


def slug(text: str, limit: int = 32) -> str:
    return _SLUG_RE.sub("-", text.lower()).strip("-")[:limit] or "x"


@dataclass(frozen=True)
class Session:
    id: str
    token: str = field(repr=False)
    sandbox_id: str
    task_name: str
    created_at: float

    def public(self) -> dict:
        """What the API shows: never the token."""
        return {
            "session": self.id,
            "sandbox_id": self.sandbox_id,
            "task_name": self.task_name,
            "created_at": self.created_at,
        }


class SessionError(ValueError):
    """A registration that cannot be accepted; the message names the field."""


class SessionRegistry:
    """Thread-safe map token → Session (the shim has one per process)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_token: dict[str, Session] = {}
        self._by_id: dict[str, Session] = {}
        self._tokens: frozenset[str] = frozenset()  # asked by every request: made on change

    def register(self, token: Any, sandbox_id: Any, task_name: Any) -> Session:  # (JSON values)
        for name, value in (
            ("session_token", token),
            ("sandbox_id", sandbox_id),
            ("task_name", task_name),
        ):
            if not isinstance(value, str) or not value.strip():
                raise SessionError(f"{name}: a non-empty string is required")
        if len(token) < 8:
            raise SessionError("session_token: at least 8 characters")
        with self._lock:
            existing = self._by_token.get(token)
            if existing is not None:
                if (existing.sandbox_id, existing.task_name) == (sandbox_id, task_name):
                    return existing  # registering twice is harmless
                raise SessionError("session_token: already registered for another sandbox")
            sid = f"{slug(task_name)}-{slug(sandbox_id, 16)}-{os.urandom(3).hex()}"
            session = Session(sid, token, sandbox_id, task_name, time.time())
            self._by_token[token] = session
            self._by_id[sid] = session
            self._tokens = frozenset(self._by_token)
            return session

    def for_token(self, token: str | None) -> Session | None:
        if not token or not self._by_token:
            return None
        with self._lock:
            return self._by_token.get(token)

    def end(self, session_id: str) -> Session | None:
        with self._lock:
            session = self._by_id.pop(session_id, None)
            if session is not None:
                self._by_token.pop(session.token, None)
                self._tokens = frozenset(self._by_token)
            return session

    def list(self) -> list[Session]:
        with self._lock:
            return sorted(self._by_id.values(), key=lambda s: s.created_at)

    def tokens(self) -> frozenset[str]:
        return self._tokens  # replaced whole under the lock, never changed in place


def request_tokens(headers) -> list[str]:
    """`inbound_tokens()` of an aiohttp request's (case-insensitive) headers, the one credential
    header a client sends looked up by name rather than every header walked; the same list."""
    auth = headers.getall("authorization", ())
    keys = headers.getall("x-api-key", ())
    if auth and keys:  # both: in the order they came
        return inbound_tokens(headers.items())
    return inbound_tokens([("authorization", v) for v in auth] or [("x-api-key", v) for v in keys])


def inbound_tokens(headers: Iterable[tuple[str, str]]) -> list[str]:
    """The credential values a client sent (`authorization: Bearer X` → X, with any whitespace
    between, `x-api-key` → value)."""
    found = []
    for name, value in headers:
        key = name.lower()
        if key == "authorization":
            found.append(bearer_value(value))
        elif key == "x-api-key":
            found.append(value.strip())
    return [t for t in found if t]
