import asyncio

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from proxy.config.load import load_settings
from proxy.server.readiness import classify, readiness
from proxy.upstream.factory import make_upstream

pytestmark = pytest.mark.quick


@pytest.mark.parametrize("status, ok, reason", [
    (200, True, "ok"), (404, True, "not_found"), (405, True, "method_not_allowed"),
    (401, True, "unauthorized"), (302, True, "http_302"), (500, False, "http_500"), (503, False, "http_503")])
def test_classify(status, ok, reason):
    assert classify(status) == (ok, reason)


async def _not_allowed(request):
    return web.Response(status=405)


@pytest.mark.parametrize("client", ["auto", "h1", "httpx", "aiohttp"])
def test_readiness_reports_each_lane_through_the_shims_own_client(client):
    async def main():
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", _not_allowed)
        async with TestServer(app) as server:
            base = str(server.make_url("")).rstrip("/")
            settings = load_settings({"CCP_ANTHROPIC_BASE_URL": base, "CCP_UPSTREAM_CLIENT": client,
                                          "CCP_ZAI_BASE_URL": "http://127.0.0.1:9/api/anthropic"})
            upstream = make_upstream(settings)
            await upstream.start()
            try:
                return await readiness(settings, upstream)
            finally:
                await upstream.close()

    report = asyncio.run(main())
    assert report["ok"] is False
    assert report["providers"]["anthropic"]["reason"] == "method_not_allowed"
    assert report["providers"]["anthropic"]["reachable"] is True
    assert report["providers"]["zai"]["reachable"] is False
    assert report["license"]["ok"] is True


def test_a_lane_without_its_key_is_a_credential_problem_and_one_with_it_is_not():
    from proxy.server.readiness import credential_problem, describe_destinations
    bare = load_settings({})
    assert "ZAI_API_KEY" in credential_problem(bare, "zai")
    assert "NO CREDENTIAL" in describe_destinations(bare)
    keyed = load_settings({"ZAI_API_KEY": "zai-key-0123456789"})
    assert credential_problem(keyed, "zai") is None
    assert credential_problem(bare, "anthropic") is None  # it forwards the client's own
