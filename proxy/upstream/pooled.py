"""The HTTP/2-capable upstream client: `HttpxUpstream`, the same seam as `AiohttpUpstream`.

It owns connections (one pool, pooled per origin, keep-alive), the protocol (HTTP/2 offered by ALPN
unless `CCP_FORCE_H1`; plain http:// is always HTTP/1.1) and the timeouts:

    phase                       bound                    error at the seam
    TCP connect                 CCP_DIAL_TIMEOUT         UpstreamTimeout
    TLS handshake               CCP_TLS_TIMEOUT          UpstreamTimeout
    until response headers      CCP_HEADER_TIMEOUT       UpstreamTimeout   (non-stream: also JSON)
    whole non-stream answer     CCP_JSON_TIMEOUT         UpstreamTimeout
    between two stream chunks   CCP_SSE_IDLE_TIMEOUT     StreamIdle

httpx has one connect timeout for TCP and TLS together, so the pool gets a network backend that
splits them. Read timeouts are enforced here with `asyncio.timeout`, never by httpcore: an HTTP/2
read timeout in httpcore poisons the whole connection, so one idle stream would end every stream
multiplexed beside it; cancelling one reader ends only its own stream.

Bodies are relayed as raw bytes (`aiter_raw`): never decoded, `content-encoding` passes unchanged. No
default headers, cookies, redirects or environment proxies are added.

A POST is never sent twice unless nothing of it was written. `send()` tries once more, once, only
when the failure provably came before the first byte of this attempt: the connect or the TLS
handshake of a new connection was refused, reset or closed (`httpcore.ConnectError`, not a
certificate or other TLS refusal, never a timeout), or the connection it was given had been closed
by the upstream, found before writing (`_PhasedStream.write` asks the kernel, POLLRDHUP, before an
attempt's first write; httpcore itself looks for that on idle HTTP/1.1 connections but not on
HTTP/2 ones). Any failure after a byte went out is the client's 502; httpcore's own retries are of
what it never wrote. Only public httpx/httpcore API is used; one consequence: an HTTP/2 stream the
client abandons is forgotten by httpcore without an RST_STREAM (the upstream stops at its
flow-control window), one reason HTTP/2 is not the default (docs/upstream-clients.md).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import select
import ssl
from collections.abc import AsyncGenerator, AsyncIterator
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import cast

import httpcore
import httpx

from proxy.config.settings import Settings
from proxy.core.errors import UpstreamError, UpstreamTimeout
from proxy.upstream.base import StreamIdle, UpstreamRequest, UpstreamResponse, describe, too_large
from proxy.upstream.tls import trust

log = logging.getLogger("ccp.upstream")

# Connection-specific headers (HTTP/2 forbids them) and framing the client computes itself.
_NOT_FORWARDED = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "upgrade",
        "te",
        "host",
        "content-length",
    }
)
_TIMEOUTS = (TimeoutError, httpx.TimeoutException, httpcore.TimeoutException)
_BROKEN = (
    httpx.TransportError,
    httpcore.NetworkError,
    httpcore.ProtocolError,
    httpcore.UnsupportedProtocol,
    httpcore.ProxyError,
    OSError,
)


# POLLRDHUP: the peer closed its side (Linux). Without it a readable socket may only hold data.
_RDHUP = getattr(select, "POLLRDHUP", 0) if hasattr(select, "poll") else 0
_PEER_GONE = (_RDHUP | select.POLLHUP | select.POLLERR) if _RDHUP else 0  # 0: not asked
# TLS failures that are a closed connection, not a refusal (a second try may pass)
_TLS_CLOSED = (ssl.SSLEOFError, ssl.SSLZeroReturnError)


class _Attempt:
    """One try of one request: whether any byte of it (or of its new connection) was written."""

    __slots__ = ("written",)

    def __init__(self) -> None:
        self.written = False


# the attempt under way in this task (set by send(); the writes of one request happen in its task)
_ATTEMPT: contextvars.ContextVar[_Attempt | None] = contextvars.ContextVar(
    "ccp_upstream_attempt", default=None
)


class _ClosedBeforeWrite(httpcore.WriteError):
    """The connection had been closed by the upstream before this attempt wrote anything."""


def _peer_closed(stream: httpcore.AsyncNetworkStream) -> bool:
    """Whether the upstream has closed this connection (a FIN or RST has arrived)."""
    sock = stream.get_extra_info("socket")
    if not _PEER_GONE or sock is None:
        return False
    poller = select.poll()
    poller.register(sock.fileno(), _PEER_GONE)
    return bool(poller.poll(0))


def _nothing_written(exc: BaseException, attempt: _Attempt) -> bool:
    """Whether `exc` ended an attempt before any byte of it left: may be tried once more."""
    if isinstance(exc, _ClosedBeforeWrite):
        return True
    if attempt.written or not isinstance(exc, httpcore.ConnectError | httpx.ConnectError):
        return False
    cause: BaseException | None = exc
    for _ in range(8):  # (the chain is short: httpcore's error, anyio's, the ssl module's)
        if cause is None:
            break
        if isinstance(cause, ssl.SSLError) and not isinstance(cause, _TLS_CLOSED):
            return False  # a certificate or protocol refusal would be refused again
        cause = cause.__cause__ or cause.__context__
    return True


class _PhasedStream(httpcore.AsyncNetworkStream):
    """A TCP stream whose TLS handshake has its own timeout, and whose first write of an attempt
    first checks that the upstream has not closed it (see the module docstring)."""

    def __init__(self, inner: httpcore.AsyncNetworkStream, tls_timeout: float) -> None:
        self._inner = inner
        self._tls_timeout = tls_timeout

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        attempt = _ATTEMPT.get()
        if attempt is not None and not attempt.written:
            if _peer_closed(self._inner):
                raise _ClosedBeforeWrite("the upstream had closed the connection")
            attempt.written = True
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            tls = await self._inner.start_tls(ssl_context, server_hostname, self._tls_timeout)
        except httpcore.ConnectTimeout as exc:
            raise httpcore.ConnectTimeout(
                f"TLS handshake not done within {self._tls_timeout:g}s (CCP_TLS_TIMEOUT)"
            ) from exc
        return _PhasedStream(tls, self._tls_timeout)  # (its writes are checked too)

    def get_extra_info(self, info: str):
        return self._inner.get_extra_info(info)


class _PhasedBackend(httpcore.AsyncNetworkBackend):
    """anyio sockets; TCP connect under the dial timeout, TLS under the TLS timeout."""

    def __init__(self, tls_timeout: float) -> None:
        self._inner = httpcore.AnyIOBackend()
        self._tls_timeout = tls_timeout

    async def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        try:
            stream = await self._inner.connect_tcp(
                host, port, timeout, local_address, socket_options
            )
        except httpcore.ConnectTimeout as exc:
            raise httpcore.ConnectTimeout(
                f"TCP connect not done within {timeout:g}s (CCP_DIAL_TIMEOUT)"
            ) from exc
        return _PhasedStream(stream, self._tls_timeout)

    async def connect_unix_socket(self, path, timeout=None, socket_options=None):
        return await self._inner.connect_unix_socket(path, timeout, socket_options)

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _Body(httpx.AsyncByteStream):
    """httpcore's response body as the byte stream httpx wants."""

    def __init__(self, stream) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for part in self._stream:
            yield part

    async def aclose(self) -> None:
        await self._stream.aclose()


class _Transport(httpx.AsyncBaseTransport):
    """httpx on an httpcore pool of our own making (for the phased backend); exceptions stay httpcore's."""

    def __init__(self, pool: httpcore.AsyncConnectionPool) -> None:
        self._pool = pool

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        resp = await self._pool.handle_async_request(
            httpcore.Request(
                method=request.method,
                url=httpcore.URL(
                    scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path
                ),
                headers=request.headers.raw,
                content=request.stream,
                extensions=request.extensions,
            )
        )
        return httpx.Response(
            resp.status, headers=resp.headers, stream=_Body(resp.stream), extensions=resp.extensions
        )

    async def aclose(self) -> None:
        await self._pool.aclose()


class _HttpxResponse:
    __slots__ = ("_resp", "_owner", "_idle", "_deadline", "status", "headers", "h2")

    def __init__(
        self,
        resp: httpx.Response,
        owner: HttpxUpstream,
        idle: float | None,
        deadline: float | None,
    ) -> None:
        self._resp = resp
        self._owner = owner
        self._idle = idle
        self._deadline = deadline
        self.status = resp.status_code
        self.headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in resp.headers.raw]
        self.h2 = resp.http_version == "HTTP/2"

    @property
    def is_sse(self) -> bool:
        ctype = self._resp.headers.get("content-type", "")
        return ctype.split(";", 1)[0].strip().lower() == "text/event-stream"

    async def _next(self, parts: AsyncIterator[bytes]) -> bytes:
        """The next raw chunk, within the idle timeout and the answer's deadline."""
        loop = asyncio.get_running_loop()
        when = None if self._idle is None else loop.time() + self._idle
        if self._deadline is not None:
            when = self._deadline if when is None else min(when, self._deadline)
        async with asyncio.timeout_at(when):
            return await anext(parts)

    async def chunks(self) -> AsyncIterator[bytes]:
        # (an async generator, which httpx annotates as an AsyncIterator)
        parts = cast("AsyncGenerator[bytes, None]", self._resp.aiter_raw())
        try:
            while True:
                try:
                    chunk = await self._next(parts)
                except StopAsyncIteration:
                    return
                except _TIMEOUTS as exc:
                    raise StreamIdle("no data from upstream within the idle timeout") from exc
                except _BROKEN as exc:
                    raise UpstreamError(f"upstream stream broke: {describe(exc)}") from exc
                yield chunk
        finally:
            await parts.aclose()

    async def read(self) -> bytes:
        # (an async generator, which httpx annotates as an AsyncIterator)
        parts = cast("AsyncGenerator[bytes, None]", self._resp.aiter_raw())
        data = bytearray()
        limit = self._owner._max_body
        try:
            while True:
                data += await self._next(parts)
                if len(data) > limit:
                    raise too_large(limit)
        except StopAsyncIteration:
            return bytes(data)
        except _TIMEOUTS as exc:
            raise UpstreamTimeout("upstream did not answer in time") from exc
        except _BROKEN as exc:
            raise UpstreamError(f"upstream body broke: {describe(exc)}") from exc
        finally:
            await parts.aclose()

    def release(self) -> None:
        """A fully read HTTP/1.1 answer leaves its connection in the pool; otherwise it is closed."""
        self._owner._aclose_later(self._resp)

    def close(self) -> None:
        self._owner._aclose_later(self._resp)


class HttpxUpstream:
    """The real upstream client on httpx/httpcore: one pool, HTTP/2 unless `CCP_FORCE_H1`."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._client: httpx.AsyncClient | None = None
        self._closing: set[asyncio.Task] = set()  # strong references to scheduled aclose()s
        # connect bounds the TCP dial (the backend bounds TLS); reads are bounded here, see above
        self._timeouts = httpx.Timeout(None, connect=settings.dial_timeout).as_dict()
        self._max_body = settings.max_response_bytes  # CCP_MAX_RESPONSE_BYTES: a JSON answer's

    async def start(self) -> None:
        s = self._settings
        pool = httpcore.AsyncConnectionPool(
            ssl_context=trust(s, http2=not s.force_h1),
            max_connections=None,
            max_keepalive_connections=s.upstream_pool_size,  # CCP_UPSTREAM_POOL_SIZE idle ones
            keepalive_expiry=s.upstream_keepalive,  # CCP_UPSTREAM_KEEPALIVE
            http1=True,
            http2=not s.force_h1,
            network_backend=_PhasedBackend(s.tls_timeout),
        )
        self._client = httpx.AsyncClient(
            transport=_Transport(pool),
            trust_env=False,
            follow_redirects=False,
            cookies=CookieJar(DefaultCookiePolicy(allowed_domains=[])),
        )  # keeps no cookies

    async def close(self) -> None:
        if self._closing:
            await asyncio.gather(*list(self._closing), return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        assert self._client is not None, "HttpxUpstream.start() was not awaited"
        s = self._settings
        now = asyncio.get_running_loop().time()
        deadline = None if request.stream else now + s.json_timeout
        headers_by = (
            now + s.header_timeout if deadline is None else min(now + s.header_timeout, deadline)
        )
        out = httpx.Request(
            request.method,
            request.url,
            content=request.body,
            headers=[(k, v) for k, v in request.headers.items() if k.lower() not in _NOT_FORWARDED],
            extensions={"timeout": self._timeouts},
        )
        for tries_left in (1, 0):
            attempt = _Attempt()
            token = _ATTEMPT.set(attempt)
            try:
                async with asyncio.timeout_at(headers_by):
                    resp = await self._client.send(out, stream=True)
            except httpcore.ConnectTimeout as exc:
                raise UpstreamTimeout(f"cannot connect to {request.host}: {describe(exc)}") from exc
            except _TIMEOUTS as exc:
                raise UpstreamTimeout(f"no response headers from {request.host} in time") from exc
            except _BROKEN as exc:
                if tries_left and _nothing_written(exc, attempt):
                    log.debug(
                        "nothing was written to %s (%s): once more", request.host, describe(exc)
                    )
                    continue
                raise UpstreamError(f"cannot reach {request.host}: {describe(exc)}") from exc
            finally:
                _ATTEMPT.reset(token)
            return _HttpxResponse(
                resp, self, s.sse_idle_timeout if request.stream else None, deadline
            )
        raise AssertionError("unreachable: the last try returns or raises")

    def _aclose_later(self, resp: httpx.Response) -> None:
        """release()/close() are sync in the seam; the close itself is async, so it is scheduled."""
        if resp.is_closed:
            return
        task = asyncio.get_running_loop().create_task(_quietly_close(resp))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)


async def _quietly_close(resp: httpx.Response) -> None:
    try:
        await resp.aclose()
    except Exception as exc:  # the connection broke while closing: it is dropped either way
        log.debug("closing an upstream response failed: %s", describe(exc))
