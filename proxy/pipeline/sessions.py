"""Sandbox sessions: which inbound token belongs to which (sandbox, task), and its trajectory folder.

A harness registers `(session_token, sandbox_id, task_name)` before a sandboxed agent starts; any model
request whose `authorization: Bearer` or `x-api-key` equals that token belongs to the session. The
token is the sandbox's only credential: it is accepted from the client, mapped here, and never
forwarded upstream. A session's id is safe as a folder name (`logs/trajectory/<id>/`).

A fleet (several shims on one PostgreSQL store, proxy.sinks.store_pg.PgFleet as `shared`): a
registration is also written to the store's `sessions` table, with the token's sha256 and never the
token. A shim that meets a credential it does not know looks its hash up there (`lookup()`: in a
thread, waiting at most LOOKUP_TIMEOUT, at most LOOKUPS_AT_ONCE queries; a miss, a timeout or an
error is remembered MISS_TTL seconds, so a flood of unknown tokens costs one query each per
MISS_TTL and a database away costs no request more than LOOKUP_TIMEOUT); an active session found is
adopted: from then on the token is known here, masked in what this shim writes, as if registered
here. Ending a session marks it ended in the store; every shim asks the store which of its sessions
ended every CCP_FLEET_SYNC (`sync()`), so a session ended anywhere stops being honoured everywhere
within that interval plus one query.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import os
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from proxy.core.headers import bearer_value

_SLUG_RE = re.compile(r"[^a-z0-9]+")
log = logging.getLogger("ccp.sessions")

MIN_TOKEN = 8  # characters: a shorter credential is no session token (register() refuses it)
LOOKUP_TIMEOUT = 1.0  # seconds a request waits for the store to say whose a token is
LOOKUPS_AT_ONCE = (
    2  # store queries in flight per shim (a flood of unknown tokens waits, then misses)
)
MISS_TTL = 2.0  # seconds a token the store did not know (or could not be asked about) stays unknown
MISSES_KEPT = 10_000  # remembered misses, at most (expired ones go first)


def token_hash(token: str) -> str:
    """What the store keeps of a session token: its sha256, hex."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


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
    """Thread-safe map token → Session (the shim has one per process); with `shared` (a fleet's
    store, see the module docstring) the fleet's sessions too."""

    def __init__(self, shared: Any = None, clock=time.monotonic) -> None:
        self._lock = threading.Lock()
        self._by_token: dict[str, Session] = {}
        self._by_id: dict[str, Session] = {}
        self._tokens: frozenset[str] = frozenset()  # asked by every request: made on change
        self.shared = shared  # proxy.sinks.store_pg.PgFleet, or None (one shim: memory only)
        self._clock = clock
        self._misses: dict[str, float] = {}  # token hash -> until (clock)
        self._pending: dict[str, asyncio.Task] = {}  # one query per hash at a time
        self._slots: asyncio.Semaphore | None = None
        self.lookups = 0  # store queries made (tests, and the flood's cost)

    @staticmethod
    def check(token: Any, sandbox_id: Any, task_name: Any) -> None:
        for name, value in (
            ("session_token", token),
            ("sandbox_id", sandbox_id),
            ("task_name", task_name),
        ):
            if not isinstance(value, str) or not value.strip():
                raise SessionError(f"{name}: a non-empty string is required")
        if len(token) < MIN_TOKEN:
            raise SessionError(f"session_token: at least {MIN_TOKEN} characters")

    def register(self, token: Any, sandbox_id: Any, task_name: Any) -> Session:  # (JSON values)
        self.check(token, sandbox_id, task_name)
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

    async def register_shared(self, token: Any, sandbox_id: Any, task_name: Any) -> Session:
        """register(), and for the fleet: the session written to the store (its token's hash), or
        the active one another shim registered with this token adopted (SessionError: for another
        sandbox). Without `shared`, register()."""
        if self.shared is None:
            return self.register(token, sandbox_id, task_name)
        self.check(token, sandbox_id, task_name)
        local = self.for_token(token)
        if local is not None and (local.sandbox_id, local.task_name) != (sandbox_id, task_name):
            raise SessionError("session_token: already registered for another sandbox")
        sid = (
            local.id if local else f"{slug(task_name)}-{slug(sandbox_id, 16)}-{os.urandom(3).hex()}"
        )
        row = await asyncio.to_thread(
            self.shared.publish, sid, token_hash(token), sandbox_id, task_name, time.time()
        )
        if (row["sandbox_id"], row["task_name"]) != (sandbox_id, task_name):
            raise SessionError("session_token: already registered for another sandbox")
        return self.adopt(token, row)

    def adopt(self, token: str, row: dict) -> Session:
        """Know a fleet session here (a store row: id, sandbox_id, task_name, created)."""
        with self._lock:
            existing = self._by_token.get(token)
            if existing is not None and existing.id == row["id"]:
                return existing
            if existing is not None:
                self._by_id.pop(existing.id, None)
            session = Session(
                row["id"], token, row["sandbox_id"], row["task_name"], float(row["created"])
            )
            self._by_token[token] = session
            self._by_id[session.id] = session
            self._tokens = frozenset(self._by_token)
            self._misses.pop(token_hash(token), None)
            return session

    async def lookup(self, token: str) -> Session | None:
        """The session of a credential: known here, else (a fleet) found in the store and adopted.
        Waits at most LOOKUP_TIMEOUT; None is remembered MISS_TTL seconds."""
        session = self.for_token(token)
        if session is not None or self.shared is None or len(token) < MIN_TOKEN:
            return session
        h = token_hash(token)
        now = self._clock()
        if self._misses.get(h, 0.0) > now:
            return None
        task = self._pending.get(h)
        if task is None:
            task = asyncio.ensure_future(self._fetch(h))
            self._pending[h] = task
            task.add_done_callback(functools.partial(self._forget, h))
        try:
            row = await asyncio.wait_for(asyncio.shield(task), LOOKUP_TIMEOUT)
        except TimeoutError:
            row = None
        if row is None or row.get("state", "active") != "active":
            self._miss(h)
            return None
        return self.adopt(token, row)

    def _forget(self, h: str, _task: asyncio.Task) -> None:
        self._pending.pop(h, None)

    async def _fetch(self, h: str) -> dict | None:
        if self._slots is None:
            self._slots = asyncio.Semaphore(LOOKUPS_AT_ONCE)
        async with self._slots:
            self.lookups += 1
            try:
                return await asyncio.to_thread(self.shared.lookup, h)
            except Exception as exc:  # noqa: BLE001 - a store away: unknown for MISS_TTL
                log.warning("session lookup in the store failed: %s: %s", type(exc).__name__, exc)
                return None

    def _miss(self, h: str) -> None:
        now = self._clock()
        if len(self._misses) >= MISSES_KEPT:
            self._misses = {k: v for k, v in self._misses.items() if v > now}
            if len(self._misses) >= MISSES_KEPT:
                self._misses.clear()
        self._misses[h] = now + MISS_TTL

    async def end_shared(self, session_id: str) -> dict | None:
        """end() here and, for a fleet, in the store (a session this shim never saw too): the
        ended session's public view, or None when neither knew it."""
        session = self.end(session_id)
        row = None
        if self.shared is not None:
            row = await asyncio.to_thread(self.shared.end, session_id, time.time())
        if session is not None:
            return session.public()
        if row is None:
            return None
        return {
            "session": row["id"],
            "sandbox_id": row["sandbox_id"],
            "task_name": row["task_name"],
            "created_at": row["created"],
        }

    async def sync(self) -> list[str]:
        """A fleet: forget the sessions the store says ended (on any shim); returns their ids."""
        if self.shared is None:
            return []
        with self._lock:
            ids = list(self._by_id)
        if not ids:
            return []
        ended = await asyncio.to_thread(self.shared.ended, ids)
        for sid in ended:
            self.end(sid)
        return ended

    async def close(self) -> None:
        """Wait for the store queries still running (a stopping shim leaves no task behind)."""
        pending = list(self._pending.values())
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

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
