"""The shim's own HTTP/1.1 client for cleartext upstreams (`CCP_UPSTREAM_CLIENT=h1`, and `auto`'s
choice for http:// URLs).

A cleartext upstream speaks HTTP/1.1 whichever client is used, and the shim sends it one kind of
request: a POST whose body is bytes already in hand. For that, a general client's machinery (a
request object, payload writers, a connector with per-host limits, a timer context for each phase)
is most of its cost, so this one has none of it: the request line, the headers and the body go out
in one `writelines`, and the answer is parsed by llhttp (`httptools`) straight into the response
the handler reads.

- One pool of keep-alive connections per host:port, newest first. A connection idle for longer than
  `KEEPALIVE_S` is closed, not reused; one the upstream closed is never handed out. A POST is never
  retried on a fresh connection (it may have been acted on).
- One timer per exchange, re-armed rather than replaced: the header timeout, then for a JSON answer
  the total timeout and for a stream the idle timeout, judged against the last byte that arrived (a
  stream paused because the client reads slowly is not idle).
- Flow control: reading from the upstream pauses while more than `HIGH_WATER` bytes wait for the
  handler and resumes below `LOW_WATER`.
- Errors leave as the seam's own (proxy.core.errors), worded as the other clients word them.
"""

from __future__ import annotations

import asyncio
from collections import deque
from functools import lru_cache
from urllib.parse import urlsplit

import httptools

from proxy.config.settings import Settings
from proxy.core.errors import UpstreamError, UpstreamTimeout
from proxy.upstream.base import StreamIdle, UpstreamRequest, describe, too_large

KEEPALIVE_S = 15.0  # an idle pooled connection older than this is closed, not reused
HIGH_WATER = 256 * 1024  # body bytes waiting for the handler at which reading pauses
LOW_WATER = 64 * 1024  # ... and below which it resumes


@lru_cache(maxsize=256)
def _target(url: str) -> tuple[tuple[str, int], str, bytes]:
    """A URL's ((host, port), host[:port], request-target) — the shim sends to a handful of URLs."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"not a cleartext http URL: {url}")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    netloc = parts.netloc.rpartition("@")[2]
    return (parts.hostname, parts.port or 80), netloc, path.encode("ascii")


class _Connection(asyncio.Protocol):
    """One keep-alive connection; the bytes it reads go to the parser of the answer now awaited."""

    __slots__ = ("key", "transport", "response", "closed", "last_used", "last_data", "_time")

    def __init__(self, loop: asyncio.AbstractEventLoop, key: tuple[str, int]) -> None:
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.response: _Response | None = None
        self.closed = False
        self.last_used = 0.0
        self.last_data = 0.0
        self._time = loop.time

    def connection_made(self, transport) -> None:
        self.transport = transport

    def connection_lost(self, exc: BaseException | None) -> None:
        self.closed = True
        if self.response is not None:
            self.response._lost(exc)

    def data_received(self, data: bytes) -> None:
        response = self.response
        if response is None or response._done:  # bytes nobody asked for: not to be trusted again
            self.close()
            return
        self.last_data = self._time()
        try:
            response._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            response._fail(UpstreamError, f"malformed HTTP from the upstream ({describe(exc)})")
            self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class _Response:
    """One answer: its status and headers, then its body as the parser hands it over."""

    __slots__ = (
        "status",
        "headers",
        "h2",
        "is_sse",
        "_conn",
        "_client",
        "_parser",
        "_raw",
        "_head",
        "_buf",
        "_size",
        "_done",
        "_error",
        "_waiter",
        "_paused",
        "_timer",
        "_loop",
        "_stream",
        "_deadline",
        "_head_deadline",
        "_host",
        "_keep",
        "_until_close",
        "_what",
        "__weakref__",
    )

    def __init__(
        self,
        client: H1Upstream,
        conn: _Connection,
        host: str,
        stream: bool,
        deadline: float,
        head_deadline: float,
    ) -> None:
        loop = client._loop
        assert loop is not None  # (send() checked it: start() was awaited)
        self._client = client
        self._conn: _Connection | None = conn  # None once let go (_detach)
        self._loop = loop
        self._host = host
        self._stream = stream
        self._deadline = deadline  # a JSON answer's whole-exchange limit (a stream has none)
        self._head_deadline = head_deadline
        self._parser: httptools.HttpResponseParser = httptools.HttpResponseParser(self)
        self._raw: list[tuple[bytes, bytes]] = []
        self._head = loop.create_future()
        self._buf: deque[bytes] = deque()
        self._size = 0
        self._done = False
        self._error: tuple[type, str] | None = None
        self._waiter: asyncio.Future | None = None
        self._paused = False
        self._keep = False
        self._until_close = False
        self._what = "stream"
        self.status = 0
        self.headers: list[tuple[str, str]] = []
        self.h2 = False
        self.is_sse = False
        self._timer = loop.call_at(head_deadline, self._on_timer)

    # -- the parser's callbacks ------------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self._done:  # a second answer to one request: the connection is spoiled, not reused
            self._keep = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self._raw.append((name, value))

    def on_headers_complete(self) -> None:
        if self._done:
            return
        status = self._parser.get_status_code()
        if 100 <= status < 200:  # an interim answer (100 Continue): the real one follows
            self._raw = []
            return
        self.status = status
        self._keep = self._parser.should_keep_alive()
        headers = self.headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in self._raw]
        framed = False
        for name, value in headers:
            lname = name.lower()
            if lname == "content-type":
                self.is_sse = value.partition(";")[0].strip().lower() == "text/event-stream"
            elif lname == "content-length" or lname == "transfer-encoding":
                framed = True
        self._until_close = not framed and status not in (204, 304)
        if self._stream:  # from now on the limit is the idle time, judged at the timer
            conn = self._conn
            assert conn is not None  # (the parser is fed only through its connection)
            self._timer.cancel()
            self._timer = self._loop.call_at(conn.last_data + self._client._idle, self._on_timer)
        elif self._head_deadline < self._deadline:  # headers had the shorter limit
            self._timer.cancel()
            self._timer = self._loop.call_at(self._deadline, self._on_timer)
        if not self._head.done():
            self._head.set_result(None)

    def on_body(self, body: bytes) -> None:
        if self._done:
            return
        self._buf.append(body)
        self._size += len(body)
        if self._size > HIGH_WATER and not self._paused:
            self._paused = True
            conn = self._conn
            assert conn is not None and conn.transport is not None  # (bytes came through it)
            conn.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self.status == 0 or self._done:  # the end of an interim answer, or of a spoiled one
            return
        self._done = True
        self._timer.cancel()
        self._wake()

    # -- ends ------------------------------------------------------------------------------------

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, kind: type, reason: str) -> None:
        if self._done or self._error is not None:
            return
        self._error = (kind, reason)
        self._timer.cancel()
        if not self._head.done():
            self._head.set_result(None)
        self._wake()

    def _lost(self, exc: BaseException | None) -> None:
        if self._done:
            return
        if self.status and self._until_close and exc is None:  # a body framed by the close
            self._done = True
            self._timer.cancel()
            self._wake()
            return
        self._fail(
            UpstreamError,
            describe(exc) if exc is not None else "the upstream closed the connection",
        )

    def _on_timer(self) -> None:
        if self._done or self._error is not None:
            return
        conn = self._conn
        assert conn is not None  # (_detach cancels the timer)
        now = self._loop.time()
        if not self.status:
            self._fail(UpstreamTimeout, f"no response headers from {self._host} in time")
        elif not self._stream:
            self._fail(UpstreamTimeout, "upstream did not answer in time")
        else:
            idle_until = conn.last_data + self._client._idle
            if self._paused or now < idle_until:  # bytes came, or the handler is what waits
                self._timer = self._loop.call_at(max(idle_until, now + 0.05), self._on_timer)
                return
            self._fail(StreamIdle, "no data from upstream within the idle timeout")
        conn.close()

    def _raise(self) -> None:
        assert self._error is not None  # (called on an error only)
        kind, reason = self._error
        if kind is UpstreamError:
            raise UpstreamError(f"upstream {self._what} broke: {reason}")
        raise kind(reason)

    # -- what the handler calls ------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """Whether the next chunks() step will not wait: bytes, the end or an error are here."""
        return bool(self._buf) or self._done or self._error is not None

    @property
    def finished(self) -> bool:
        """Whether the answer is complete and all of it has been handed over."""
        return self._done and not self._buf

    def chunks(self) -> _Response:
        return self

    def __aiter__(self) -> _Response:
        return self

    async def __anext__(self) -> bytes:
        while True:
            buf = self._buf
            if buf:  # all that has arrived, as one piece: one write to the client, not one each
                if len(buf) == 1:
                    chunk = buf.popleft()
                else:
                    chunk = b"".join(buf)
                    buf.clear()
                self._size -= len(chunk)
                if self._paused and self._size <= LOW_WATER:
                    self._paused = False
                    conn = self._conn
                    assert conn is not None and conn.transport is not None  # (still this one's)
                    conn.transport.resume_reading()
                return chunk
            if self._error is not None:
                self._raise()
            if self._done:
                raise StopAsyncIteration
            waiter = self._waiter = self._loop.create_future()
            try:
                await waiter
            finally:
                self._waiter = None

    async def read(self) -> bytes:
        self._what = "body"
        limit = self._client._max_body
        parts = []
        size = 0
        async for chunk in self:
            size += len(chunk)
            if size > limit:
                raise too_large(limit)
            parts.append(chunk)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def release(self) -> None:
        """Back to the pool when the answer was read to its end on a reusable connection."""
        conn = self._detach()
        if conn is None:
            return
        if self._done and self._keep and not conn.closed:
            self._client._put(conn)
        else:
            conn.close()

    def close(self) -> None:
        conn = self._detach()
        if conn is not None:
            conn.close()

    def _detach(self) -> _Connection | None:
        """This answer's connection, no longer tied to it (None when it was let go before)."""
        conn = self._conn
        if conn is not None:
            self._conn = None
            conn.response = None
            self._timer.cancel()
            # (it holds this answer's callbacks: a cycle only the GC would end; nothing feeds it now,
            # as conn.response is None)
            self._parser = None  # type: ignore[assignment]  # let go with its connection
        return conn


class H1Upstream:
    """HTTP/1.1 over cleartext TCP: keep-alive pools per host, one timer per exchange."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._idle = settings.sse_idle_timeout
        self._header = settings.header_timeout
        self._json = settings.json_timeout
        self._dial = settings.dial_timeout
        self._max_body = settings.max_response_bytes  # CCP_MAX_RESPONSE_BYTES: a JSON answer's
        self._pool_size = settings.upstream_pool_size  # CCP_UPSTREAM_POOL_SIZE: idle, per host
        self._pools: dict[tuple[str, int], list[_Connection]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sweeper: asyncio.TimerHandle | None = None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for pool in self._pools.values():
            for conn in pool:
                conn.close()
        self._pools.clear()

    # -- the pool --------------------------------------------------------------------------------

    def _take(self, key: tuple[str, int]) -> _Connection | None:
        pool = self._pools.get(key)
        if not pool:
            return None
        assert self._loop is not None  # (from send(), which checked it)
        oldest_ok = self._loop.time() - KEEPALIVE_S
        while pool:
            conn = pool.pop()
            if not conn.closed and conn.last_used >= oldest_ok:
                return conn
            conn.close()
        return None

    def _put(self, conn: _Connection) -> None:
        assert self._loop is not None  # (a connection is only made after start())
        conn.last_used = self._loop.time()
        pool = self._pools.setdefault(conn.key, [])
        if len(pool) >= self._pool_size:  # enough idle ones kept: the oldest goes
            pool.pop(0).close()
        pool.append(conn)
        if self._sweeper is None:
            self._sweeper = self._loop.call_later(KEEPALIVE_S, self._sweep)

    def _sweep(self) -> None:
        """Close the connections idle for longer than KEEPALIVE_S; look again while any remain."""
        self._sweeper = None
        assert self._loop is not None  # (armed by _put())
        oldest_ok = self._loop.time() - KEEPALIVE_S
        remaining = False
        for key, pool in self._pools.items():
            keep = [conn for conn in pool if not conn.closed and conn.last_used >= oldest_ok]
            for conn in pool:
                if conn.last_used < oldest_ok:
                    conn.close()
            self._pools[key] = keep
            remaining = remaining or bool(keep)
        if remaining:
            self._sweeper = self._loop.call_later(KEEPALIVE_S, self._sweep)

    async def _connect(self, key: tuple[str, int], host: str) -> _Connection:
        loop = self._loop
        assert loop is not None  # (from send(), which checked it)
        try:
            async with asyncio.timeout(self._dial):
                _, conn = await loop.create_connection(
                    lambda: _Connection(loop, key), key[0], key[1]
                )
        except TimeoutError as exc:
            raise UpstreamTimeout(f"cannot connect to {host} in time") from exc
        except OSError as exc:
            raise UpstreamError(f"cannot reach {host}: {describe(exc)}") from exc
        return conn

    # -- one exchange ----------------------------------------------------------------------------

    async def send(self, request: UpstreamRequest) -> _Response:
        assert self._loop is not None, "H1Upstream.start() was not awaited"
        try:
            key, host, target = _target(request.url)
        except ValueError as exc:
            raise UpstreamError(f"cannot reach {request.url}: {exc}") from None
        head = _head(request.method, target, host, request.headers, len(request.body))
        conn = self._take(key)
        if conn is None:
            conn = await self._connect(key, host)
        now = self._loop.time()
        stream = request.stream
        deadline = 0.0 if stream else now + self._json
        head_deadline = now + self._header if stream else min(now + self._header, deadline)
        conn.last_data = now
        resp = _Response(self, conn, host, stream, deadline, head_deadline)
        conn.response = resp
        assert conn.transport is not None  # (connected: create_connection() set it)
        conn.transport.writelines((head, request.body))
        try:
            await resp._head
        except BaseException:  # cancelled: the client went away while the upstream thought
            resp.close()
            raise
        if resp._error is not None:
            resp.close()
            kind, reason = resp._error
            if kind is UpstreamError:
                raise UpstreamError(f"cannot reach {host}: {reason}")
            raise kind(reason)
        return resp


def _head(method: str, target: bytes, host: str, headers: dict[str, str], length: int) -> bytes:
    """The request line and headers. A name or value holding CR or LF is refused, not sent."""
    lines = "".join([f"{name}: {value}\r\n" for name, value in headers.items()])
    if lines.count("\n") != len(headers) or lines.count("\r") != len(headers):
        raise UpstreamError("a header for the upstream holds a line break; not sent")
    return b"%s %s HTTP/1.1\r\nhost: %s\r\ncontent-length: %d\r\n%s\r\n" % (
        method.encode("ascii"),
        target,
        host.encode("ascii"),
        length,
        lines.encode("utf-8"),
    )
