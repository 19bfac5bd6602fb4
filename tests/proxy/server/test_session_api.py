import asyncio

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from proxy.config.load import load_settings
from proxy.pipeline.sessions import SessionRegistry
from proxy.server.session_api import add_routes

pytestmark = pytest.mark.quick


def _run(env, fn):
    async def main():
        app = web.Application()
        add_routes(app, SessionRegistry(), load_settings(env))
        async with TestClient(TestServer(app)) as client:
            await fn(client)
    asyncio.run(main())


def test_admin_token_guards_every_verb():
    async def go(client):
        body = {"session_token": "tok-1234567890", "sandbox_id": "s", "task_name": "t"}
        assert (await client.post("/v1/sessions", json=body)).status == 401
        assert (await client.get("/v1/sessions")).status == 401
        assert (await client.delete("/v1/sessions/x")).status == 401
        ok = await client.post("/v1/sessions", json=body, headers={"authorization": "Bearer adm-123456789"})
        assert ok.status == 201
        sid = (await ok.json())["session"]
        gone = await client.delete(f"/v1/sessions/{sid}", headers={"x-ccp-admin-token": "adm-123456789"})
        assert gone.status == 200
        again = await client.delete(f"/v1/sessions/{sid}", headers={"x-ccp-admin-token": "adm-123456789"})
        assert again.status == 404 and (await again.json())["error"]["type"] == "not_found_error"

    _run({"CCP_ADMIN_TOKEN": "adm-123456789"}, go)


def test_bad_bodies_are_400_naming_the_field():
    async def go(client):
        r = await client.post("/v1/sessions", data=b"{", headers={"content-type": "application/json"})
        assert r.status == 400
        r = await client.post("/v1/sessions", json={"session_token": "tok-1234567890", "sandbox_id": "s"})
        assert r.status == 400 and "task_name" in (await r.json())["error"]["message"]

    _run({}, go)


@pytest.mark.parametrize("field", ["session_token", "sandbox_id", "task_name"])
def test_an_over_long_session_field_is_a_400_and_registers_nothing(field):
    async def go(client):
        body = {"session_token": "tok-1234567890", "sandbox_id": "s", "task_name": "t", field: "x" * 65}
        r = await client.post("/v1/sessions", json=body)
        assert r.status == 400 and field in (await r.json())["error"]["message"]
        assert (await (await client.get("/v1/sessions")).json())["sessions"] == []

    _run({"CCP_MAX_NAME_CHARS": "64"}, go)


class _Fleet:
    """A fleet store that answers the list and refuses everything else (the database away)."""

    def active(self):
        return [{"id": "t-s-1", "sandbox_id": "s", "task_name": "t", "created": 1.0, "instance": "b"}]

    def publish(self, *args):
        raise OSError("connection refused")

    def end(self, sid, now):
        raise OSError("connection refused")


def test_a_fleet_lists_the_stores_sessions_and_a_store_away_is_503_with_nothing_registered():
    async def main():
        app = web.Application()
        registry = SessionRegistry(_Fleet())
        add_routes(app, registry, load_settings({}))
        async with TestClient(TestServer(app)) as client:
            listed = await (await client.get("/v1/sessions")).json()
            assert listed == {"sessions": [{"session": "t-s-1", "sandbox_id": "s", "task_name": "t",
                                            "created_at": 1.0, "instance": "b"}]}
            body = {"session_token": "tok-1234567890", "sandbox_id": "s", "task_name": "t"}
            away = await client.post("/v1/sessions", json=body)
            assert away.status == 503 and "tok-1234567890" not in await away.text()
            assert registry.list() == []
            assert (await client.delete("/v1/sessions/t-s-1")).status == 503
    asyncio.run(main())
