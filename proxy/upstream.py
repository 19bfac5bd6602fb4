"""The upstream seam: one small interface between the shim and the providers.

`Upstream.send(UpstreamRequest) -> UpstreamResponse` is all the handler knows of the network. The real
clients are the only code that owns connections, pooling, HTTP/1 vs HTTP/2 and timeouts; tests can put
any object with the same two methods in its place. `make_upstream(settings)` picks the real one by
`CCP_UPSTREAM_CLIENT`: `auto` (the default: `SchemeUpstream`, below), `HttpxUpstream`
(proxy.upstream_httpx, HTTP/2 by default), `H1Upstream` (proxy.upstream_h1, the shim's own HTTP/1.1
client, cleartext only) or `AiohttpUpstream` (HTTP/1.1 only, so `h2` is always false). A response may
also tell whether its next bytes are already here (`ready`) and whether all were handed over
(`finished`); the relay then writes fewer, larger pieces.

Errors leave the seam as the shim's own tree (proxy.errors): `UpstreamError` (the upstream could not
be reached or broke the connection) and `UpstreamTimeout`. Idle streams raise `StreamIdle`.
"""
from __future__ import annotations

import asyncio
import ssl
from functools import lru_cache
from typing import TYPE_CHECKING, AsyncIterator, Awaitable, NamedTuple, Protocol
from urllib.parse import urlsplit

import aiohttp

from proxy.errors import UpstreamError, UpstreamTimeout
from proxy.settings import Settings

if TYPE_CHECKING:
    from proxy.upstream_h1 import H1Upstream
    from proxy.upstream_httpx import HttpxUpstream


class StreamIdle(UpstreamTimeout):
    """No byte arrived on a stream for longer than the idle timeout."""

    err_type = "idle_timeout"


class UpstreamRequest(NamedTuple):
    """One request for a provider (a tuple: made for every request, never changed)."""
    method: str
    url: str
    headers: dict[str, str]
    body: bytes
    stream: bool

    @property
    def host(self) -> str:
        return _netloc(self.url)


@lru_cache(maxsize=256)
def _netloc(url: str) -> str:
    """A URL's host[:port]; the shim sends to a handful of URLs, so each is split once."""
    return urlsplit(url).netloc


class UpstreamResponse(Protocol):
    status: int
    headers: list[tuple[str, str]]
    h2: bool

    @property
    def is_sse(self) -> bool: ...

    def chunks(self) -> AsyncIterator[bytes]: ...

    async def read(self) -> bytes: ...

    def release(self) -> None: ...

    def close(self) -> None: ...


class Upstream(Protocol):
    async def send(self, request: UpstreamRequest) -> UpstreamResponse: ...


class _AiohttpResponse:
    __slots__ = ("_resp", "status", "headers", "h2", "is_sse")

    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        self._resp = resp
        self.status = resp.status
        self.headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in resp.raw_headers]
        self.h2 = False
        self.is_sse = resp.content_type == "text/event-stream"  # asked several times per answer

    def chunks(self) -> AsyncIterator[bytes]:
        return _Chunks(self._resp.content)

    async def read(self) -> bytes:
        try:
            return await self._resp.read()
        except (aiohttp.ServerTimeoutError, asyncio.TimeoutError) as exc:
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

    def __aiter__(self) -> "_Chunks":
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


def describe(exc: BaseException) -> str:
    """An exception as a short message for an error body or a log line."""
    text = str(exc) or type(exc).__name__
    return text if len(text) < 200 else text[:200] + "…"


def ssl_for(settings: Settings) -> "ssl.SSLContext | bool":
    """The TLS trust for upstream connections: the defaults, plus CCP_CA_BUNDLE when set."""
    if not settings.ca_bundle:
        return True
    context = ssl.create_default_context()
    context.load_verify_locations(cafile=settings.ca_bundle)
    return context


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
            total=settings.json_timeout, sock_connect=settings.dial_timeout)
        self._stream_timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=settings.dial_timeout, sock_read=settings.sse_idle_timeout)
        self._json_first = settings.json_timeout <= settings.header_timeout

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, ssl=ssl_for(self._settings))
        self._session = aiohttp.ClientSession(
            connector=connector, auto_decompress=False, request_class=_OwnHeadersOnly)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        assert self._session is not None, "AiohttpUpstream.start() was not awaited"
        timeout = self._stream_timeout if request.stream else self._json_timeout
        # A JSON request's total timeout already ends the wait for headers when it is the shorter
        # (the defaults: 30 s against 60 s), with the same error: no second timer for it then.
        header_timeout = (None if not request.stream and self._json_first
                          else self._settings.header_timeout)
        pending = self._session.request(request.method, request.url, headers=request.headers,
                                        data=request.body, timeout=timeout, allow_redirects=False)
        try:
            if header_timeout is None:
                resp = await pending
            else:
                async with asyncio.timeout(header_timeout):
                    resp = await pending
        except (aiohttp.ServerTimeoutError, asyncio.TimeoutError) as exc:
            raise UpstreamTimeout(f"no response headers from {request.host} in time") from exc
        except (aiohttp.ClientError, ConnectionError, OSError) as exc:
            raise UpstreamError(f"cannot reach {request.host}: {describe(exc)}") from exc
        return _AiohttpResponse(resp)


class SchemeUpstream:
    """`auto`: https upstreams through the HTTP/2-capable client, cleartext ones through the shim's
    own HTTP/1.1 client.

    HTTP/2 is negotiated by ALPN during the TLS handshake, so a cleartext upstream speaks HTTP/1.1
    whichever client is used; there the cheapest client wins (see the bench in the README). When no
    provider's URL is https the HTTP/2 client (httpx, h2, its TLS context: ~9 MB) is not loaded
    at all; an https URL that still turns up gets it made then."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._tls: "HttpxUpstream | None" = self._make_tls() if uses_tls(settings) else None
        from proxy.upstream_h1 import H1Upstream  # it imports this module
        self._plain = H1Upstream(settings)

    def _make_tls(self) -> "HttpxUpstream":
        from proxy import upstream_httpx  # it imports this module
        return upstream_httpx.HttpxUpstream(self._settings)

    async def start(self) -> None:
        await self._plain.start()
        if self._tls is not None:
            await self._tls.start()

    async def close(self) -> None:
        if self._tls is not None:
            await self._tls.close()
        await self._plain.close()

    def send(self, request: UpstreamRequest) -> Awaitable[UpstreamResponse]:
        """The chosen client's send() (handed back, not awaited here: one frame less between the
        handler and the network for every suspension of every request)."""
        if request.url.startswith("https://"):
            return self._send_tls(request)
        return self._plain.send(request)

    async def _send_tls(self, request: UpstreamRequest) -> UpstreamResponse:
        if self._tls is None:
            tls = self._make_tls()
            await tls.start()  # does not suspend: no other request can see it half made
            self._tls = tls
        return await self._tls.send(request)


def uses_tls(settings: Settings) -> bool:
    """Whether any provider the shim may send to is an https URL."""
    catalog = settings.catalog
    urls = ([p.base_url for p in catalog.providers.values()] if catalog is not None
            else [settings.anthropic_base_url, settings.zai_base_url])
    return any(url.startswith("https://") for url in urls)


def make_upstream(settings: Settings
                  ) -> "HttpxUpstream | AiohttpUpstream | H1Upstream | SchemeUpstream":
    """The real client `CCP_UPSTREAM_CLIENT` names (auto by default); call start()/close()."""
    if settings.upstream_client == "aiohttp":
        return AiohttpUpstream(settings)
    if settings.upstream_client == "h1":
        from proxy.upstream_h1 import H1Upstream  # it imports this module
        return H1Upstream(settings)
    if settings.upstream_client == "auto":
        return SchemeUpstream(settings)
    from proxy import upstream_httpx  # it imports this module
    return upstream_httpx.HttpxUpstream(settings)
