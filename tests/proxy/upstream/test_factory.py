"""Which client sends a request (proxy.upstream.factory): the one CCP_UPSTREAM_CLIENT names, or,
for `auto`, the shim's own h1 for every scheme; with CCP_HTTP2 https goes through the HTTP/2 client."""
import asyncio
import socket

import pytest

from proxy.config.load import load_settings
from proxy.config.settings import Settings
from proxy.core.errors import UpstreamError
from proxy.upstream.aiohttp_client import AiohttpUpstream
from proxy.upstream.base import UpstreamRequest
from proxy.upstream.factory import SchemeUpstream, make_upstream, uses_tls
from proxy.upstream.h1 import H1Upstream
from proxy.upstream.pooled import HttpxUpstream

pytestmark = pytest.mark.quick


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_make_upstream_picks_the_client():
    assert isinstance(make_upstream(Settings(upstream_client="httpx")), HttpxUpstream)
    assert isinstance(make_upstream(Settings()), H1Upstream)  # the default, https included
    auto = make_upstream(Settings(http2=True))  # https via the HTTP/2 client, cleartext via h1
    assert isinstance(auto, SchemeUpstream)
    assert isinstance(auto._tls, HttpxUpstream) and isinstance(auto._plain, H1Upstream)
    assert isinstance(make_upstream(Settings(http2=True, force_h1=True)), H1Upstream)
    assert isinstance(make_upstream(Settings(upstream_client="aiohttp")), AiohttpUpstream)
    assert isinstance(make_upstream(Settings(upstream_client="h1")), H1Upstream)


def test_auto_makes_the_tls_client_only_when_an_https_url_needs_it():
    closed = _closed_port()
    env = {"CCP_ANTHROPIC_BASE_URL": f"http://127.0.0.1:{closed}",
           "CCP_ZAI_BASE_URL": f"http://127.0.0.1:{closed}/api/anthropic", "CCP_HTTP2": "1"}

    async def main():
        auto = make_upstream(load_settings(env))
        assert isinstance(auto, SchemeUpstream) and auto._tls is None  # every provider is cleartext
        await auto.start()
        try:
            with pytest.raises(UpstreamError):
                await auto.send(UpstreamRequest("POST", f"https://127.0.0.1:{closed}/v1/messages",
                                                {}, b"{}", False))
            assert isinstance(auto._tls, HttpxUpstream)  # made when an https URL came after all
        finally:
            await auto.close()

    asyncio.run(main())


def test_uses_tls_reads_the_catalog_or_else_the_two_lanes(tmp_path):
    assert uses_tls(Settings())  # api.anthropic.com
    assert not uses_tls(Settings(anthropic_base_url="http://127.0.0.1:1",
                                 zai_base_url="http://127.0.0.1:2"))
    cleartext = {"CCP_ANTHROPIC_BASE_URL": "http://127.0.0.1:1",
                 "CCP_ZAI_BASE_URL": "http://127.0.0.1:2", "CCP_CONFIG_HOME": str(tmp_path / "h")}
    assert not uses_tls(load_settings(cleartext))
    providers = tmp_path / "providers.yaml"
    providers.write_text("providers:\n  glm:\n    protocol: openai\n"
                         "    base_url: https://glm.example.test/v1\n    key_env: GLM_API_KEY\n")
    assert uses_tls(load_settings({**cleartext, "CCP_PROVIDERS_FILE": str(providers)}))


class _Recorder:
    def __init__(self, name: str) -> None:
        self.name, self.sent, self.events = name, [], []

    async def start(self) -> None:
        self.events.append("start")

    async def close(self) -> None:
        self.events.append("close")

    async def send(self, request):
        self.sent.append(request.url)
        return self.name


def test_auto_sends_each_request_by_its_scheme_and_starts_and_closes_both():
    auto = SchemeUpstream(Settings())
    auto._plain, auto._tls = _Recorder("plain"), _Recorder("tls")

    async def main():
        await auto.start()
        got = [await auto.send(UpstreamRequest("POST", url, {}, b"", False))
               for url in ("http://127.0.0.1:1/a", "https://api.test/b", "http://127.0.0.1:1/c")]
        await auto.close()
        return got

    assert asyncio.run(main()) == ["plain", "tls", "plain"]
    assert auto._plain.sent == ["http://127.0.0.1:1/a", "http://127.0.0.1:1/c"]
    assert auto._tls.sent == ["https://api.test/b"]
    assert auto._plain.events == auto._tls.events == ["start", "close"]
