"""The shim's own HTTP/1.1 client, cleartext and TLS (`CCP_UPSTREAM_CLIENT=h1`, and `auto`'s choice
for every upstream unless `CCP_HTTP2` asks for HTTP/2 on https ones).

The shim sends an upstream one kind of request: a POST whose body is bytes already in hand. For
that, a general client's machinery (a request object, payload writers, a connector with per-host
limits, a timer context for each phase) is most of its cost, so this one has none of it: the
request line, the headers and the body go out in one `writelines`, and the answer is parsed by
llhttp (`httptools`) straight into the response the handler reads.

- https: TCP under `CCP_DIAL_TIMEOUT`, then the TLS handshake under `CCP_TLS_TIMEOUT` (asyncio's
  `start_tls`, the trust of proxy.upstream.tls, `http/1.1` offered by ALPN), so a request over TLS
  costs what the event loop's TLS costs and nothing of a general client's.
- One pool of keep-alive connections per (scheme, host, port), newest first, as many as the load
  needs (1,000 held streams are 1,000 connections, none waits for another). A connection idle for
  longer than `CCP_UPSTREAM_KEEPALIVE` is closed, not reused; one the upstream closed is never handed
  out; at most `CCP_UPSTREAM_POOL_SIZE` idle ones are kept per origin. Taking one is O(1): the pool
  is never walked for a request (a timer sweeps expired ones).
- A request is sent twice only when nothing of it was written: a new connection that failed to be
  made (refused, reset or closed during the TLS handshake) is tried once more. Once a byte has left,
  a failure is the client's 502: the upstream may have acted on it (billed it, run a tool).
- One timer per exchange, re-armed rather than replaced: the header timeout, then for a JSON answer
  the total timeout and for a stream the idle timeout, judged against the last byte that arrived (a
  stream paused because the client reads slowly is not idle).
- Flow control: reading from the upstream pauses while more than `HIGH_WATER` bytes wait for the
  handler and resumes below `LOW_WATER`.
- Errors leave as the seam's own (proxy.core.errors), worded as the other clients word them.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from functools import lru_cache
from urllib.parse import urlsplit

import httptools

from proxy.config.settings import Settings
from proxy.core.errors import UpstreamError, UpstreamTimeout
from proxy.upstream.base import StreamIdle, UpstreamRequest, describe, too_large
from proxy.upstream.tls import trust

HIGH_WATER = 256 * 1024  # body bytes waiting for the handler at which reading pauses
LOW_WATER = 64 * 1024  # ... and below which it resumes


Origin = tuple[str, int, bool]  # (host, port, TLS): what a pool is kept for


@lru_cache(maxsize=256)
def _target(url: str) -> tuple[Origin, str, bytes]:
    """A URL's ((host, port, tls), host[:port], request-target) — the shim sends to a handful of URLs."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http or https URL: {url}")
    tls = parts.scheme == "https"
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    netloc = parts.netloc.rpartition("@")[2]
    return (parts.hostname, parts.port or (443 if tls else 80), tls), netloc, path.encode("ascii")


class _NotSent(Exception):
    """A new connection could not be made, and nothing of the request was written (may be retried)."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


class _Connection(asyncio.Protocol):
    """One keep-alive connection; the bytes it reads go to the parser of the answer now awaited."""

    __slots__ = ("key", "transport", "response", "closed", "last_used", "last_data", "_time")

    def __init__(self, loop: asyncio.AbstractEventLoop, key: Origin) -> None:
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
            if self.key[2]:  # TLS: no close_notify exchange, the socket goes now (nothing to flush)
                self.transport.abort()
            else:
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
        "_no_body",
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
        self._no_body = False  # the answer to a HEAD: headers only, whatever they say of a body
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
        if self._no_body:  # (llhttp would wait for the body a HEAD's content-length announces)
            self._done = True
            self._keep = False
            self._timer.cancel()
            self._head.set_result(None)
            return
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
    """HTTP/1.1 over TCP or TLS: keep-alive pools per origin, one timer per exchange."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._idle = settings.sse_idle_timeout
        self._header = settings.header_timeout
        self._json = settings.json_timeout
        self._dial = settings.dial_timeout
        self._tls_timeout = settings.tls_timeout
        self._max_body = settings.max_response_bytes  # CCP_MAX_RESPONSE_BYTES: a JSON answer's
        self._pool_size = settings.upstream_pool_size  # CCP_UPSTREAM_POOL_SIZE: idle, per origin
        self._keepalive = settings.upstream_keepalive  # CCP_UPSTREAM_KEEPALIVE: idle expiry
        self._pools: dict[Origin, deque[_Connection]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        self._tls: ssl.SSLContext | None = None
        self.handshakes = 0  # TLS handshakes completed (new https connections)

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

    def _take(self, key: Origin) -> _Connection | None:
        """The newest idle connection to `key` that is still usable, or None. The newest is tried
        first, so when it has expired every older one has too: they all go at once."""
        pool = self._pools.get(key)
        if not pool:
            return None
        assert self._loop is not None  # (from send(), which checked it)
        oldest_ok = self._loop.time() - self._keepalive
        while pool:
            conn = pool.pop()
            if conn.closed:  # the upstream closed it while idle: never handed out
                continue
            if conn.last_used < oldest_ok:
                conn.close()
                while pool:
                    pool.pop().close()
                return None
            return conn
        return None

    def _put(self, conn: _Connection) -> None:
        assert self._loop is not None  # (a connection is only made after start())
        conn.last_used = self._loop.time()
        pool = self._pools.get(conn.key)
        if pool is None:
            pool = self._pools[conn.key] = deque()
        if len(pool) >= self._pool_size:  # enough idle ones kept: the oldest goes
            pool.popleft().close()
        pool.append(conn)
        if self._sweeper is None:
            self._sweeper = self._loop.call_later(self._keepalive, self._sweep)

    def _sweep(self) -> None:
        """Close the connections idle for longer than the keep-alive; look again while any remain."""
        self._sweeper = None
        assert self._loop is not None  # (armed by _put())
        oldest_ok = self._loop.time() - self._keepalive
        remaining = False
        for key, pool in self._pools.items():
            keep = deque(conn for conn in pool if not conn.closed and conn.last_used >= oldest_ok)
            for conn in pool:
                if conn.last_used < oldest_ok:
                    conn.close()
            self._pools[key] = keep
            remaining = remaining or bool(keep)
        if remaining:
            self._sweeper = self._loop.call_later(self._keepalive, self._sweep)

    def idle(self) -> int:
        """Idle connections in the pools now (for tests and `ccp doctor`)."""
        return sum(1 for pool in self._pools.values() for conn in pool if not conn.closed)

    async def _connect(self, key: Origin, host: str) -> _Connection:
        """A new connection: TCP within the dial timeout, then TLS within the TLS timeout. A failure
        that may pass on a second try (refused, reset, closed in the handshake) is `_NotSent`."""
        loop = self._loop
        assert loop is not None  # (from send(), which checked it)
        try:
            async with asyncio.timeout(self._dial):
                transport, conn = await loop.create_connection(
                    lambda: _Connection(loop, key), key[0], key[1]
                )
        except TimeoutError as exc:
            raise UpstreamTimeout(
                f"cannot connect to {host} in time (CCP_DIAL_TIMEOUT {self._dial:g}s)"
            ) from exc
        except OSError as exc:
            raise _NotSent(UpstreamError(f"cannot reach {host}: {describe(exc)}")) from exc
        if not key[2]:
            return conn
        if self._tls is None:
            self._tls = trust(self._settings)
        if conn.closed:  # closed by the upstream before the handshake began (nothing written);
            # uvloop's start_tls on such a transport never completes (its first write fails)
            transport.close()
            raise _NotSent(UpstreamError(f"cannot reach {host}: closed before the TLS handshake"))
        try:
            async with asyncio.timeout(self._tls_timeout):  # (the loop's own limit aborts later)
                tls_transport = await loop.start_tls(
                    transport,
                    conn,
                    self._tls,
                    server_hostname=key[0],
                    ssl_handshake_timeout=self._tls_timeout + 5.0,
                )
        except ssl.SSLCertVerificationError as exc:
            transport.close()
            raise UpstreamError(
                f"cannot reach {host}: TLS certificate not trusted ({exc.verify_message}; "
                "CCP_CA_BUNDLE adds a CA)"
            ) from exc
        except TimeoutError as exc:
            transport.close()
            raise UpstreamTimeout(
                f"TLS handshake with {host} not done within {self._tls_timeout:g}s "
                "(CCP_TLS_TIMEOUT)"
            ) from exc
        except ssl.SSLError as exc:
            transport.close()
            if isinstance(exc, ssl.SSLEOFError | ssl.SSLZeroReturnError):
                raise _NotSent(
                    UpstreamError(f"cannot reach {host}: closed during the TLS handshake")
                ) from exc
            raise UpstreamError(f"cannot reach {host}: TLS failed ({describe(exc)})") from exc
        except (ConnectionError, OSError) as exc:
            transport.close()
            raise _NotSent(
                UpstreamError(f"cannot reach {host}: TLS handshake broke ({describe(exc)})")
            ) from exc
        if tls_transport is None or tls_transport.is_closing() or conn.closed:
            # lost as the handshake ended; or (uvloop) lost before its first write, when start_tls
            # hands back a closed transport with no handshake done
            transport.close()
            raise _NotSent(UpstreamError(f"cannot reach {host}: closed during the TLS handshake"))
        conn.transport = tls_transport
        self.handshakes += 1
        return conn

    async def _connection(self, key: Origin, host: str) -> _Connection:
        """A pooled connection, else a new one; a new one that failed before anything was written is
        tried once more (a second refusal or broken handshake is the answer)."""
        conn = self._take(key)
        if conn is not None:
            return conn
        try:
            return await self._connect(key, host)
        except _NotSent:
            pass
        try:
            return await self._connect(key, host)
        except _NotSent as again:
            raise again.error from again.__cause__

    # -- one exchange ----------------------------------------------------------------------------

    async def send(self, request: UpstreamRequest) -> _Response:
        assert self._loop is not None, "H1Upstream.start() was not awaited"
        try:
            key, host, target = _target(request.url)
        except ValueError as exc:
            raise UpstreamError(f"cannot reach {request.url}: {exc}") from None
        head = _head(request.method, target, host, request.headers, len(request.body))
        conn = await self._connection(key, host)
        now = self._loop.time()
        stream = request.stream
        deadline = 0.0 if stream else now + self._json
        head_deadline = now + self._header if stream else min(now + self._header, deadline)
        conn.last_data = now
        resp = _Response(self, conn, host, stream, deadline, head_deadline)
        resp._no_body = request.method == "HEAD"
        conn.response = resp
        assert conn.transport is not None  # (connected: create_connection() set it)
        if request.body:
            conn.transport.writelines((head, request.body))
        else:
            conn.transport.write(head)
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
