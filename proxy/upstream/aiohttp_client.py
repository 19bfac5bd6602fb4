"""The aiohttp client as an upstream (CCP_UPSTREAM_CLIENT=aiohttp): the A/B baseline of the others.

A POST is never sent twice unless nothing of it was written: `send()` tries once more, once, only
when the connector could not make a new connection (`aiohttp.ClientConnectorError`: refused, reset or
closed in the TLS handshake; not a certificate or other TLS refusal, never a timeout), which comes
before any byte of the request. aiohttp itself retries a broken kept connection only for idempotent
methods, and checks a kept one is still open before it hands it out. Anything after is the 502.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator

import aiohttp

from proxy.config.settings import Settings
from proxy.core.errors import UpstreamError, UpstreamTimeout
from proxy.upstream.base import (
    StreamIdle,
    UpstreamRequest,
    UpstreamResponse,
    describe,
    too_large,
)
from proxy.upstream.tls import trust


def _nothing_written(exc: aiohttp.ClientConnectorError) -> bool:
    """A failed connect that may pass on a second try (see the module docstring)."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return False
    cause = exc.os_error
    return not isinstance(cause, ssl.SSLError) or isinstance(
        cause, ssl.SSLEOFError | ssl.SSLZeroReturnError
    )


class _AiohttpResponse:
    __slots__ = ("_resp", "_max_body", "status", "headers", "h2", "is_sse")

    def __init__(self, resp: aiohttp.ClientResponse, max_body: int) -> None:
        self._resp = resp
        self._max_body = max_body
        self.status = resp.status
        self.headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in resp.raw_headers]
        self.h2 = False
        self.is_sse = resp.content_type == "text/event-stream"  # asked several times per answer

    def chunks(self) -> AsyncIterator[bytes]:
        return _Chunks(self._resp.content)

    async def read(self) -> bytes:
        limit = self._max_body
        parts = []
        size = 0
        try:
            while chunk := await self._resp.content.readany():
                size += len(chunk)
                if size > limit:
                    raise too_large(limit)
                parts.append(chunk)
            return b"".join(parts)
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise UpstreamTimeout("upstream did not answer in time") from exc
        except (aiohttp.ClientError, ConnectionError) as exc:
            raise UpstreamError(f"upstream body broke: {describe(exc)}") from exc

    def release(self) -> None:
        self._resp.release()

    def close(self) -> None:
        self._resp.close()


class _Chunks:
    """The body as it arrives, with aiohttp's errors as the seam's. A plain async iterator, not an
    async generator: a stream's every chunk passes through here, and a generator's own frame
    suspended and resumed around each one cost more than the relaying around it."""

    __slots__ = ("_content",)

    def __init__(self, content: aiohttp.StreamReader) -> None:
        self._content = content

    def __aiter__(self) -> _Chunks:
        return self

    async def __anext__(self) -> bytes:
        try:
            chunk = await self._content.readany()
        except aiohttp.ServerTimeoutError as exc:
            raise StreamIdle("no data from upstream within the idle timeout") from exc
        except (aiohttp.ClientError, ConnectionError) as exc:
            raise UpstreamError(f"upstream stream broke: {describe(exc)}") from exc
        if not chunk:
            raise StopAsyncIteration
        return chunk


class _OwnHeadersOnly(aiohttp.ClientRequest):
    """A request that carries the headers the shim chose and no defaults of aiohttp's (its own
    Accept, Accept-Encoding and User-Agent). Asking the session to skip them instead
    (`skip_auto_headers`) builds and sorts a header dict for every request."""

    def update_auto_headers(self, skip_auto_headers) -> None:
        return None


class AiohttpUpstream:
    """The real upstream client: one pooled aiohttp session for every lane."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._session: aiohttp.ClientSession | None = None
        self._json_timeout = aiohttp.ClientTimeout(
            total=settings.json_timeout, sock_connect=settings.dial_timeout
        )
        self._stream_timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=settings.dial_timeout, sock_read=settings.sse_idle_timeout
        )
        self._json_first = settings.json_timeout <= settings.header_timeout

    async def start(self) -> None:
        # (no CCP_UPSTREAM_POOL_SIZE here: aiohttp's limits bound connections in use, which would
        # queue held streams, not the idle ones it keeps; it closes those after 15 s itself)
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, ssl=trust(self._settings))
        self._session = aiohttp.ClientSession(
            connector=connector, auto_decompress=False, request_class=_OwnHeadersOnly
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        assert self._session is not None, "AiohttpUpstream.start() was not awaited"
        timeout = self._stream_timeout if request.stream else self._json_timeout
        # A JSON request's total timeout already ends the wait for headers when it is the shorter
        # (the defaults: 30 s against 60 s), with the same error: no second timer for it then.
        header_timeout = (
            None if not request.stream and self._json_first else self._settings.header_timeout
        )
        loop = asyncio.get_running_loop()
        headers_by = None if header_timeout is None else loop.time() + header_timeout
        for tries_left in (1, 0):
            pending = self._session.request(
                request.method,
                request.url,
                headers=request.headers,
                data=request.body,
                timeout=timeout,
                allow_redirects=False,
            )
            try:
                if headers_by is None:
                    resp = await pending
                else:
                    async with asyncio.timeout_at(headers_by):
                        resp = await pending
            except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
                raise UpstreamTimeout(f"no response headers from {request.host} in time") from exc
            except aiohttp.ClientConnectorError as exc:
                if tries_left and _nothing_written(exc):
                    continue
                raise UpstreamError(f"cannot reach {request.host}: {describe(exc)}") from exc
            except (aiohttp.ClientError, ConnectionError, OSError) as exc:
                raise UpstreamError(f"cannot reach {request.host}: {describe(exc)}") from exc
            return _AiohttpResponse(resp, self._settings.max_response_bytes)
        raise AssertionError("unreachable: the last try returns or raises")
