"""Which client sends a request: the one CCP_UPSTREAM_CLIENT names, or (`auto`) the shim's own
HTTP/1.1 client for every upstream, with https ones through the HTTP/2 client when CCP_HTTP2 asks."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING

from proxy.config.settings import Settings
from proxy.upstream.aiohttp_client import AiohttpUpstream
from proxy.upstream.base import UpstreamRequest, UpstreamResponse
from proxy.upstream.h1 import H1Upstream

if TYPE_CHECKING:
    from proxy.upstream.pooled import HttpxUpstream


class SchemeUpstream:
    """`auto` with CCP_HTTP2: https upstreams through the HTTP/2-capable client, cleartext ones
    through the shim's own HTTP/1.1 client.

    HTTP/2 is negotiated by ALPN during the TLS handshake, so a cleartext upstream speaks HTTP/1.1
    whichever client is used; there the cheapest client wins (docs/performance.md). When no
    provider's URL is https the HTTP/2 client (httpx, h2 and a TLS context: megabytes) is not loaded
    at all; an https URL that still turns up gets it made then."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._tls: HttpxUpstream | None = self._make_tls() if uses_tls(settings) else None
        self._plain = H1Upstream(settings)

    def _make_tls(self) -> HttpxUpstream:
        from proxy.upstream import (
            pooled as upstream_httpx,  # (httpx and h2 load only when needed)
        )

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
    urls = (
        [p.base_url for p in catalog.providers.values()]
        if catalog is not None
        else [settings.anthropic_base_url, settings.zai_base_url]
    )
    return any(url.startswith("https://") for url in urls)


def make_upstream(
    settings: Settings,
) -> HttpxUpstream | AiohttpUpstream | H1Upstream | SchemeUpstream:
    """The real client `CCP_UPSTREAM_CLIENT` names (auto by default); call start()/close()."""
    if settings.upstream_client == "aiohttp":
        return AiohttpUpstream(settings)
    if settings.upstream_client == "h1":
        return H1Upstream(settings)
    if settings.upstream_client == "auto":
        if settings.http2 and not settings.force_h1:
            return SchemeUpstream(settings)
        return H1Upstream(settings)  # (cleartext and https alike: docs/upstream-clients.md)
    from proxy.upstream import (
        pooled as upstream_httpx,  # (httpx and h2 load only when needed)
    )

    return upstream_httpx.HttpxUpstream(settings)
