"""The runtime-control endpoints on the real app, with a fake upstream in place of the network: what
the upstream received after each change, the usage records written, and what a refusal leaves."""
import asyncio
import json
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from proxy.config.load import load_settings
from proxy.pipeline.state import STATE
from proxy.server.app import create_app

pytestmark = pytest.mark.quick

HAIKU = "claude-haiku-4-5-20251001"
ADMIN = "adm-0123456789"
MESSAGE = {"id": "msg_1", "type": "message", "role": "assistant", "model": "m", "content": [],
           "stop_reason": "end_turn", "usage": {"input_tokens": 3, "output_tokens": 2}}
SSE = [b'event: message_start\ndata: {"type":"message_start","message":{"usage":'
       b'{"input_tokens":4,"output_tokens":1}}}\n\n',
       b'event: message_stop\ndata: {"type":"message_stop"}\n\n']


class Answer:
    def __init__(self, stream: bool, gate: asyncio.Event | None) -> None:
        self.status, self.h2, self.is_sse, self._gate = 200, False, stream, gate
        self.headers = [("content-type", "text/event-stream" if stream else "application/json")]

    async def chunks(self):
        yield SSE[0]
        if self._gate is not None:
            await self._gate.wait()  # the stream is in flight until the test lets it end
        yield SSE[1]

    async def read(self):
        return json.dumps(MESSAGE).encode()

    def release(self):
        pass

    def close(self):
        pass


class Upstream:
    """Answers every request; `gate` holds a stream open between its first and last event."""

    def __init__(self) -> None:
        self.requests, self.gate = [], None

    async def send(self, request):
        self.requests.append(request)
        return Answer(request.stream, self.gate)

    def last(self):
        req = self.requests[-1]
        return req.url, {k.lower(): v for k, v in req.headers.items()}, json.loads(req.body)


@pytest.fixture
def env(tmp_path):
    return {"CCP_LOGS_DIR": str(tmp_path / "logs"), "CCP_CONFIG_HOME": str(tmp_path / "home"),
            "ZAI_API_KEY": "zai-key-0123456789", "CCP_PERSIST": "0",
            "CCP_ZAI_BASE_URL": "http://zai.test/api/anthropic",
            "CCP_ANTHROPIC_BASE_URL": "http://anth.test"}


def run(env, fn):
    """`fn(client, upstream, state)` against the app; returns the usage records written."""
    upstream = Upstream()

    async def main():
        app = create_app(load_settings(env), upstream)
        app[STATE].load_settings = lambda: load_settings(env)  # what a reload reads
        async with TestClient(TestServer(app)) as client:
            await fn(client, upstream, app[STATE])

    asyncio.run(main())
    path = Path(env["CCP_LOGS_DIR"], "usage.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


async def ask(client, model=HAIKU, stream=False, headers=None):
    resp = await client.post("/v1/messages", headers={"x-api-key": "client-key", **(headers or {})},
                             json={"model": model, "max_tokens": 5, "stream": stream,
                                   "messages": [{"role": "user", "content": "hi"}]})
    await resp.read()
    assert resp.status == 200
    return resp.headers["x-ccp-request-id"]


async def control(client, body, status=200, headers=None):
    resp = await client.post("/v1/admin/controls", json=body, headers=headers or {})
    data = await resp.json()
    assert resp.status == status, data
    return data


def controls_of(records):
    return [r for r in records if r["op"] == "control"]


def test_pause_and_resume_switch_the_lane_from_the_next_request(env):
    async def go(client, upstream, _state):
        await ask(client)
        assert upstream.last()[0] == "http://zai.test/api/anthropic/v1/messages"
        data = await control(client, {"paused": True}, headers={"x-ccp-actor": "ccp pause"})
        assert data["changed"] == [{"control": "paused", "from": False, "to": True}]
        await ask(client)
        url, headers, _ = upstream.last()
        assert url == "http://anth.test/v1/messages" and headers["x-api-key"] == "client-key"
        got = await (await client.get("/v1/admin/controls")).json()
        assert got["paused"] is True and got["sources"]["paused"]["origin"] == "runtime"
        assert got["sources"]["paused"]["detail"] == "POST /v1/admin/controls (ccp pause)"
        again = await control(client, {"paused": True})
        assert again["changed"] == []  # already paused: nothing to record
        await control(client, {"paused": False})
        await ask(client)
        assert upstream.last()[0].startswith("http://zai.test/")
    records = run(env, go)
    models = [(r["lane"], r["decision"]) for r in records if r["op"] != "control"]
    assert models == [("zai", "to_zai"), ("anthropic", "offload_paused"), ("zai", "to_zai")]
    changes = controls_of(records)
    assert [(c["decision"], c["control"]["name"], c["control"]["from"], c["control"]["to"])
            for c in changes] == [("control_change", "paused", False, True),
                                  ("control_change", "paused", True, False)]
    assert changes[0]["control"]["by"] == "POST /v1/admin/controls (ccp pause)"
    assert changes[0]["path"] == "/v1/admin/controls" and changes[0]["model"] is None
    assert changes[0]["lane"] is None and len({r["rid"] for r in records}) == len(records)


def test_a_stream_in_flight_keeps_its_lane_when_the_shim_is_paused(env):
    async def go(client, upstream, _state):
        upstream.gate = asyncio.Event()
        held = asyncio.create_task(ask(client, stream=True))
        deadline = asyncio.get_running_loop().time() + 5.0
        while not upstream.requests:  # until the stream reached the upstream (held open there)
            assert asyncio.get_running_loop().time() < deadline, "the stream never left"
            await asyncio.sleep(0)
        assert not held.done()
        await control(client, {"paused": True})
        upstream.gate.set()
        await held
        upstream.gate = None
        await ask(client)
        assert [r.url.split("/")[2] for r in upstream.requests] == ["zai.test", "anth.test"]
    records = run(env, go)
    stream = next(r for r in records if r["op"] == "stream")
    assert (stream["lane"], stream["decision"]) == ("zai", "to_zai") and stream["sse"]["complete"]


def test_the_header_mode_reaches_the_zai_upstream(env):
    async def go(client, upstream, _state):
        await ask(client)
        assert upstream.last()[1]["x-api-key"] == "zai-key-0123456789"
        data = await control(client, {"zai_header_mode": "bearer"})
        assert data["changed"] == [{"control": "zai_header_mode", "from": "x-api-key",
                                    "to": "authorization"}]
        await ask(client)
        headers = upstream.last()[1]
        assert headers["authorization"] == "Bearer zai-key-0123456789"
        assert "x-api-key" not in headers
        await ask(client, model="claude-sonnet-4-5")  # the anthropic lane is not touched
        headers = upstream.last()[1]
        assert headers["x-api-key"] == "client-key" and "authorization" not in headers
    records = [r for r in run(env, go) if r["op"] != "control"]
    assert [r.get("header_mode") for r in records] == ["x-api-key", "authorization", None]


def test_the_model_override_is_what_the_upstream_receives(env):
    async def go(client, upstream, _state):
        await control(client, {"model": "claude-opus-4-1"})
        await ask(client)
        url, _, body = upstream.last()
        assert url == "http://anth.test/v1/messages" and body["model"] == "claude-opus-4-1"
        await control(client, {"model": None})
        await ask(client)
        url, _, body = upstream.last()
        assert url.startswith("http://zai.test/") and body["model"] == HAIKU
    records = run(env, go)
    assert [r["decision"] for r in records] == ["control_change", "manual_override",
                                                "control_change", "to_zai"]
    assert [r["control"]["to"] for r in controls_of(records)] == ["claude-opus-4-1", None]


@pytest.mark.parametrize("body,expected", [
    ({"paused": "yes"}, "paused='yes': expected true or false"),
    ({"zai_header_mode": "token"}, "expected one of x-api-key, authorization, bearer"),
    ({"model": "gpt-5"}, "model 'gpt-5': no lane or route serves it; names that can be served"),
    ({"paused": True, "model": "gpt-5"}, "no lane or route serves it"),
    ({"speed": 3}, "unknown control 'speed'"),
])
def test_invalid_values_are_400_and_change_nothing(env, body, expected):
    async def go(client, upstream, _state):
        resp = await client.post("/v1/admin/controls", json=body)
        data = await resp.json()
        assert resp.status == 400 and data["type"] == "error"
        assert data["error"]["type"] == "invalid_request_error"
        assert expected in data["error"]["message"]
        assert data["error"]["message"].startswith("nothing changed: ")
        await ask(client)
        assert upstream.last()[0].startswith("http://zai.test/")
        assert upstream.last()[1]["x-api-key"] == "zai-key-0123456789"
    assert controls_of(run(env, go)) == []


def test_not_json_is_400(env):
    async def go(client, _upstream, _state):
        resp = await client.post("/v1/admin/controls", data=b"{paused",
                                 headers={"content-type": "application/json"})
        assert resp.status == 400 and "not valid JSON" in (await resp.json())["error"]["message"]
    assert run(env, go) == []


def test_with_an_admin_token_a_call_without_it_is_401_and_changes_nothing(env):
    async def go(client, upstream, _state):
        for method, path in (("GET", "/v1/admin/controls"), ("POST", "/v1/admin/controls"),
                             ("POST", "/v1/admin/providers/reload")):
            resp = await client.request(method, path, json={"paused": True},
                                        headers={"authorization": "Bearer wrong-token"})
            assert resp.status == 401, path
            assert (await resp.json())["error"]["type"] == "authentication_error"
        await ask(client)
        assert upstream.last()[0].startswith("http://zai.test/")
        await control(client, {"paused": True}, headers={"authorization": f"Bearer {ADMIN}"})
        await ask(client)
        assert upstream.last()[0].startswith("http://anth.test/")
    records = run({**env, "CCP_ADMIN_TOKEN": ADMIN}, go)
    assert [r["decision"] for r in records] == ["to_zai", "control_change", "offload_paused"]


def test_providers_reload_applies_a_new_route_and_refuses_a_broken_file(env, tmp_path):
    providers = tmp_path / "providers.yaml"
    providers.write_text("providers: {}\n")
    env = {**env, "CCP_PROVIDERS_FILE": str(providers), "ALT_KEY": "alt-key-0123456789"}

    async def go(client, upstream, state):
        providers.write_text("providers:\n  alt:\n    base_url: http://alt.test\n"
                             "    key_env: ALT_KEY\n    routes: [{name: fast, model: alt-1}]\n")
        resp = await client.post("/v1/admin/providers/reload")
        data = await resp.json()
        assert resp.status == 200 and data["reloaded"] is True
        assert data["controls"]["providers"]["routes"] == ["fast"]
        await ask(client, model="fast")
        url, headers, body = upstream.last()
        assert url == "http://alt.test/v1/messages" and body["model"] == "alt-1"
        assert headers["x-api-key"] == "alt-key-0123456789"
        await ask(client, model="claude-sonnet-4-5", headers={"x-api-key": "alt-key-0123456789"})
        assert "x-api-key" not in upstream.last()[1]  # a new provider's key is foreign to anthropic
        assert "alt-key-0123456789" in state.redaction_secrets()

        providers.write_text("providers:\n  alt: {base_url: not-a-url, key_env: ALT_KEY}\n")
        resp = await client.post("/v1/admin/providers/reload")
        data = await resp.json()
        assert resp.status == 400 and data["type"] == "error"
        assert data["error"]["message"].startswith("providers not reloaded, the old catalog stays")
        assert "base_url" in data["error"]["message"]
        await ask(client, model="fast")
        assert upstream.last()[0] == "http://alt.test/v1/messages"  # the old catalog serves on
    records = run(env, go)
    (reload,) = controls_of(records)
    assert reload["control"]["name"] == "providers"
    assert (reload["control"]["from"]["routes"], reload["control"]["to"]["routes"]) == ([], ["fast"])
    assert "alt-key" not in json.dumps(reload)


def test_a_reload_that_strands_the_override_is_400(env, tmp_path):
    providers = tmp_path / "providers.yaml"
    providers.write_text("providers:\n  alt: {base_url: 'http://alt.test', key_env: ALT_KEY,"
                         " routes: [fast]}\n")
    env = {**env, "CCP_PROVIDERS_FILE": str(providers)}

    async def go(client, upstream, _state):
        await control(client, {"model": "fast"})
        providers.write_text("providers: {}\n")
        resp = await client.post("/v1/admin/providers/reload")
        assert resp.status == 400
        assert "override 'fast'" in (await resp.json())["error"]["message"]
        await ask(client)
        assert upstream.last()[0] == "http://alt.test/v1/messages"
    assert [r["control"]["name"] for r in controls_of(run(env, go))] == ["model"]


def test_control_records_stay_out_of_the_request_metrics(env):
    async def go(client, _upstream, _state):
        await control(client, {"paused": True})
        metrics = await (await client.get("/metrics")).text()
        assert "ccp_requests_total{" not in metrics and "control_change" not in metrics
    assert len(run(env, go)) == 1
