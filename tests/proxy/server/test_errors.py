"""The one error mapper: the protocol's shape by path, the rid, the lane, connection: close."""
import asyncio
import json

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from proxy.config.settings import Settings
from proxy.core.errors import BadRequest, NotFound
from proxy.pipeline.state import RID_HEADER, STATE, ShimState
from proxy.server.errors import LANE, RID, error_middleware, error_response

pytestmark = pytest.mark.quick


def test_the_shape_follows_the_protocol():
    anthropic = error_response(NotFound("gone"), "rid-1")
    assert json.loads(anthropic.body)["type"] == "error" and anthropic.headers[RID_HEADER] == "rid-1"
    openai = error_response(NotFound("gone"), "rid-2", "openai", lane="glm")
    assert json.loads(openai.body)["error"]["message"] == "gone"
    assert openai.headers["x-ccp-lane"] == "glm"


def test_the_middleware_answers_what_a_handler_raised():
    async def model(request):
        request[RID], request[LANE] = "rid-9", "zai"
        raise BadRequest("no model", close_connection=True)

    async def other(request):
        raise NotFound("nothing here")

    async def main():
        app = web.Application(middlewares=[error_middleware])
        app[STATE] = ShimState(Settings(persist=False), None)
        app.router.add_post("/v1/chat/completions", model)
        app.router.add_get("/x", other)
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
