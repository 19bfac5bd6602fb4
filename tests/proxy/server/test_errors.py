"""The one error mapper: the protocol's shape by path, the rid, the lane, connection: close."""
import asyncio
import json

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from proxy.config.settings import Settings
from proxy.core.errors import BadRequest, NotFound
from proxy.pipeline.state import RID_HEADER, STATE, ShimState
from proxy.server.app import create_app, handle_model_request
from proxy.server.errors import LANE, RID, error_response, mapped

pytestmark = pytest.mark.quick


def test_the_shape_follows_the_protocol():
    anthropic = error_response(NotFound("gone"), "rid-1")
    assert json.loads(anthropic.body)["type"] == "error" and anthropic.headers[RID_HEADER] == "rid-1"
    openai = error_response(NotFound("gone"), "rid-2", "openai", lane="glm")
    assert json.loads(openai.body)["error"]["message"] == "gone"
    assert openai.headers["x-ccp-lane"] == "glm"


def test_a_mapped_handler_is_answered_by_the_mapper():
    async def model(request):
        request[RID], request[LANE] = "rid-9", "zai"
        raise BadRequest("no model", close_connection=True)

    async def other(request):
        raise NotFound("nothing here")

    async def main():
        app = web.Application()
        app[STATE] = ShimState(Settings(persist=False), None)
        app.router.add_post("/v1/chat/completions", mapped(model))
        app.router.add_get("/x", mapped(other))
        async with TestClient(TestServer(app)) as client:
            one = await client.post("/v1/chat/completions")
            two = await client.get("/x")
            return (one.status, dict(one.headers), await one.json(),
                    two.status, dict(two.headers), await two.json())

    s1, h1, b1, s2, h2, b2 = asyncio.run(main())
    assert s1 == 400 and h1[RID_HEADER] == "rid-9" and h1["x-ccp-lane"] == "zai"
    assert h1.get("Connection", "").lower() == "close"
    assert b1["error"]["type"] == "invalid_request_error" and "param" in b1["error"]  # openai's
    assert s2 == 404 and b2["type"] == "error" and h2[RID_HEADER]


def test_every_route_of_the_shim_is_mapped_but_the_model_route_which_maps_its_own():
    # a route added without `mapped` would answer a ShimError with aiohttp's plain-text 500
    app = create_app(Settings(persist=False))
    assert not app.middlewares  # (a middleware runs on every model request too: see mapped())
    unmapped = [
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.handler is not handle_model_request and not hasattr(route.handler, "__wrapped__")
    ]
    assert unmapped == []
    assert sum(route.handler is handle_model_request for route in app.router.routes()) >= 4
