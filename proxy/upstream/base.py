"""The upstream seam: one small interface between the shim and the providers.

`Upstream.send(UpstreamRequest) -> UpstreamResponse` is all the handler knows of the network (and
`start()`/`close()` its lifecycle). The real clients are the only code that owns connections, pooling,
HTTP/1 vs HTTP/2, TLS and timeouts; tests put `proxy.upstream.fake.FakeUpstream` (or any object with
the same three methods) in its place. `make_upstream(settings)` picks the real one by
`CCP_UPSTREAM_CLIENT`: `auto` (the default: `H1Upstream`, proxy.upstream.h1, the shim's own HTTP/1.1
client over TCP or TLS; with `CCP_HTTP2` the `SchemeUpstream` of proxy.upstream.factory, https through
httpx), `HttpxUpstream` (proxy.upstream.pooled, HTTP/2 unless `CCP_FORCE_H1`), `H1Upstream`, or
`AiohttpUpstream` (HTTP/1.1 only). The readiness probe sends through the same seam. A response may
also tell whether its next bytes are already here (`ready`) and whether all were handed over
(`finished`); the relay then writes fewer, larger pieces.

Errors leave the seam as the shim's own tree (proxy.core.errors): `UpstreamError` (the upstream could not
be reached or broke the connection) and `UpstreamTimeout`. Idle streams raise `StreamIdle`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from functools import lru_cache
from typing import NamedTuple, Protocol
from urllib.parse import urlsplit

from proxy.core.errors import UpstreamTimeout, UpstreamTooLarge


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
    """The seam. `start()` before the first send (in the running loop), `close()` once at the end:
    it closes every connection the client keeps. proxy.upstream.fake is a double of it."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    # (an awaitable, not only a coroutine: SchemeUpstream hands back the chosen client's own)
    def send(self, request: UpstreamRequest) -> Awaitable[UpstreamResponse]: ...


def too_large(limit: int) -> UpstreamTooLarge:
    """What a client raises when an answer's body grows past CCP_MAX_RESPONSE_BYTES."""
    return UpstreamTooLarge(
        f"the upstream's answer is larger than {limit} bytes (CCP_MAX_RESPONSE_BYTES); cut"
    )


def describe(exc: BaseException) -> str:
    """An exception as a short message for an error body or a log line."""
    text = str(exc) or type(exc).__name__
    return text if len(text) < 200 else text[:200] + "…"
