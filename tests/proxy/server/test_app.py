"""The app and relay through the upstream seam: no sockets to an upstream, a fake in its place."""
import asyncio
import json

import pytest
from aiohttp.test_utils import TestClient, TestServer

from proxy.config.load import load_settings
from proxy.core.errors import UpstreamError
from proxy.server.app import create_app
from proxy.upstream.base import StreamIdle
from proxy.upstream.fake import FakeResponse, FakeUpstream

pytestmark = pytest.mark.quick

SSE = [b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":"
       b"{\"input_tokens\":4,\"output_tokens\":1}}}\n\n",
       b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\"}\n\n",
       b"event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":6}}\n\n",
       b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"]


def run(coro_fn, tmp_path, env=None):
    settings = load_settings({"CCP_LOGS_DIR": str(tmp_path), "ZAI_API_KEY": "zk",
                                  "CCP_ZAI_BASE_URL": "http://zai.test/api/anthropic",
                                  "CCP_ANTHROPIC_BASE_URL": "http://anth.test", **(env or {})})
    upstream = FakeUpstream()

    async def main():
        async with TestClient(TestServer(create_app(settings, upstream))) as client:
            await coro_fn(client, upstream)

    asyncio.run(main())
    lines = (tmp_path / "usage.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_stream_passthrough_is_byte_exact_and_accounted(tmp_path):
    async def go(client, upstream):
        upstream.responses.append(FakeResponse(200, [("content-type", "text/event-stream"),
                                                     ("request-id", "req_9")], SSE))
        resp = await client.post("/v1/messages?beta=true", json={"model": "claude-haiku-4-5",
                                                                 "stream": True})
        assert resp.status == 200 and resp.headers["request-id"] == "req_9"
        assert await resp.read() == b"".join(SSE)
        sent = upstream.requests[0]
        assert sent.url == "http://zai.test/api/anthropic/v1/messages?beta=true"
        assert sent.headers["x-api-key"] == "zk"

    [rec] = run(go, tmp_path)
    assert (rec["lane"], rec["decision"], rec["header_mode"], rec["op"]) == ("zai", "to_zai",
                                                                          "x-api-key", "stream")
    assert rec["sse"]["events"] == 4 and rec["sse"]["complete"] is True
    assert (rec["in_tokens"], rec["out_tokens"], rec["reason"]) == (4, 6, "streaming")


def test_a_stream_cut_inside_an_event_still_ends_with_a_readable_error_event(tmp_path):
    half = SSE[1][: len(SSE[1]) // 2]  # the upstream dies in the middle of a delta's data line

    async def go(client, upstream):
        upstream.responses.append(FakeResponse.sse([SSE[0], half], fail_after=2,
                                                   fail_with=StreamIdle("idle")))
        resp = await client.post("/v1/messages", json={"model": "claude-sonnet-4-5", "stream": True})
        body = await resp.read()
        assert body.startswith(SSE[0] + half)
        # what an SSE parser sees after the cut: the broken event ended, then a whole error event
        events = body[len(SSE[0]):].split(b"\n\n")
        error = [e for e in events if e.startswith(b"event: error\n")]
        assert len(error) == 1
        assert json.loads(error[0].split(b"data: ", 1)[1])["error"]["type"] == "timeout_error"

    [rec] = run(go, tmp_path)
    assert (rec["err_type"], rec["sse"]["complete"]) == ("idle_timeout", False)


def test_idle_stream_gets_error_event_and_is_recorded(tmp_path):
    async def go(client, upstream):
        upstream.responses.append(FakeResponse(200, [("content-type", "text/event-stream")], SSE,
                                               fail_after=2, fail_with=StreamIdle("idle")))
        resp = await client.post("/v1/messages", json={"model": "claude-sonnet-4-5", "stream": True})
        body = await resp.read()
        assert body.startswith(SSE[0] + SSE[1])
        assert b"event: error" in body and b"timeout_error" in body
        assert upstream.responses == [] and upstream.requests

    [rec] = run(go, tmp_path)
    assert (rec["err_type"], rec["reason"], rec["sse"]["complete"]) == ("idle_timeout",
                                                                       "stream_timeout", False)
    assert "header_mode" not in rec and rec["lane"] == "anthropic"


def test_unreachable_upstream_is_502_api_error(tmp_path):
    async def go(client, upstream):
        upstream.error = UpstreamError("cannot reach anth.test")
        resp = await client.post("/v1/messages", json={"model": "claude-opus-4-1"})
        assert resp.status == 502
        assert (await resp.json())["error"]["type"] == "api_error"
        assert resp.headers["x-ccp-request-id"]

    [rec] = run(go, tmp_path)
    assert (rec["status"], rec["err_type"], rec["lane"]) == (502, "net", "anthropic")


def test_nonstream_body_and_status_unchanged(tmp_path):
    body = json.dumps({"type": "error", "error": {"type": "overloaded_error", "message": "x"}}).encode()

    async def go(client, upstream):
        upstream.responses.append(FakeResponse(529, [("content-type", "application/json")], [body]))
        resp = await client.post("/v1/message", json={"model": "claude-sonnet-4-5"})
        assert resp.status == 529 and await resp.read() == body

    [rec] = run(go, tmp_path)
    assert (rec["status"], rec["upstream_status"], rec["err_type"]) == (529, 529, "upstream_5xx")


def test_bad_inputs_each_get_one_record(tmp_path):
    async def go(client, upstream):
        cases = [
            (client.post("/v1/messages", data=b"{not json", headers={"content-type": "application/json"}), 400),
            (client.post("/v1/messages", json={"messages": []}), 400),
            (client.post("/v1/messages", data=b"x", headers={"content-type": "text/plain"}), 415),
            (client.post("/v1/nope", json={}), 404),
            (client.get("/v1/messages"), 405),
        ]
        for call, status in cases:
            resp = await call
            assert resp.status == status
            err = await resp.json()
            assert err["type"] == "error" and err["error"]["message"]
        assert upstream.requests == []

    recs = run(go, tmp_path)
    assert [r["status"] for r in recs] == [400, 400, 415, 404, 405]
    assert {r["err_type"] for r in recs} == {"bad_request"}


def test_requests_leave_no_cyclic_garbage_of_the_shims_own(tmp_path):
    """Every request's objects are freed by reference counting: a cycle (a closure held by the dict
    it reads, a parser holding its response's callbacks) would leave them all to the GC."""
    import gc

    answer = json.dumps({"type": "message", "usage": {"input_tokens": 1, "output_tokens": 2}}).encode()
    sse = b"".join(SSE)

    async def upstream(reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                body = await reader.readexactly(length)
                if b'"stream": true' in body:
                    writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                                 b"content-length: %d\r\n\r\n%s" % (len(sse), sse))
                else:
                    writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                                 b"content-length: %d\r\n\r\n%s" % (len(answer), answer))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def main():
        server = await asyncio.start_server(upstream, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        settings = load_settings({"CCP_LOGS_DIR": str(tmp_path), "CCP_ANTHROPIC_BASE_URL": url,
                                      "CCP_ZAI_BASE_URL": url, "ZAI_API_KEY": "zk"})
        async with TestClient(TestServer(create_app(settings))) as client:
            for stream in (False, True) * 2:  # warm: first-use caches are not per-request garbage
                await (await client.post("/v1/messages", json={"model": "claude-sonnet-4-5",
                                                               "stream": stream})).read()
            gc.collect()
            gc.garbage.clear()
            gc.set_debug(gc.DEBUG_SAVEALL)
            try:
                for stream in (False, True) * 20:
                    resp = await client.post("/v1/messages", json={"model": "claude-sonnet-4-5",
                                                                   "stream": stream})
                    assert resp.status == 200 and await resp.read()
                gc.collect()
                ours = [o for o in gc.garbage
                        if type(o).__module__.startswith("proxy.")
                        or getattr(o, "__module__", "").startswith("proxy.")]
            finally:
                gc.set_debug(0)
                gc.garbage.clear()
        server.close()
        return ours

    assert asyncio.run(main()) == []


def test_a_full_disk_never_fails_the_client_and_readyz_names_the_sink(tmp_path, monkeypatch):
    import errno
    import os

    from proxy.pipeline.state import STATE
    from proxy.server import app as app_mod

    async def reachable(settings, upstream):  # the lanes are not what this test is about
        return {"ok": True, "providers": {}, "license": {}}

    monkeypatch.setattr(app_mod, "readiness", reachable)
    body = json.dumps({"type": "message", "usage": {"input_tokens": 2, "output_tokens": 3}}).encode()
    real_write = os.write
    full = [False]

    async def go(client, upstream):
        writer = client.server.app[STATE].writer

        def write(fd, data):
            if full[0] and fd == writer._fd:
                raise OSError(errno.ENOSPC, "No space left on device")
            return real_write(fd, data)

        monkeypatch.setattr(os, "write", write)
        full[0] = True
        for model in ("claude-sonnet-4-5", "claude-haiku-4-5"):
            upstream.responses.append(FakeResponse(200, [("content-type", "application/json")],
                                                   [body]))
            resp = await client.post("/v1/messages", json={"model": model})
            assert resp.status == 200 and await resp.read() == body  # the upstream's answer
        ready = await client.get("/readyz")
        report = await ready.json()
        assert ready.status == 200 and report["status"] == "degraded"
        assert report["degraded"] == ["usage_log"]
        assert report["sinks"]["usage_log"]["error"].startswith("ENOSPC")
        metrics = await (await client.get("/metrics")).text()
        assert 'ccp_sink_write_errors_total{sink="usage_log"} 2.0' in metrics
        full[0] = False  # room again
        upstream.responses.append(FakeResponse(200, [("content-type", "application/json")], [body]))
        assert (await client.post("/v1/messages", json={"model": "claude-opus-4-1"})).status == 200
        report = await (await client.get("/readyz")).json()
        assert report["status"] == "ok" and report["degraded"] == []

    recs = run(go, tmp_path)
    assert [r["model"] for r in recs] == ["claude-opus-4-1"]  # the two lost, the third whole


# ---------------------------------------------------------------- trust and bounds (issue 20)
ANSWER = json.dumps({"type": "message", "usage": {"input_tokens": 1, "output_tokens": 2}}).encode()


def test_a_foreign_host_is_421_and_a_cross_site_origin_403_each_with_a_record(tmp_path):
    async def go(client, upstream):
        model = {"model": "claude-opus-4-1"}
        resp = await client.post("/v1/messages", json=model, headers={"host": "evil.example"})
        assert resp.status == 421 and (await resp.json())["error"]["type"] == "invalid_request_error"
        resp = await client.post("/v1/chat/completions", json=model,
                                 headers={"origin": "https://evil.example"})
        err = await resp.json()
        assert resp.status == 403 and err["error"]["type"] == "permission_error"  # OpenAI's shape
        assert "type" not in err
        for path in ("/healthz", "/v1/usage", "/v1/admin/controls"):  # every endpoint
            assert (await client.get(path, headers={"host": "rebound.example:18080"})).status == 421
            assert (await client.get(path, headers={"origin": "null"})).status == 403
        assert upstream.requests == []

    recs = run(go, tmp_path)
    assert [(r["path"], r["status"], r["reason"]) for r in recs] == [
        ("/v1/messages", 421, "refused"), ("/v1/chat/completions", 403, "refused")]


def test_allowed_hosts_and_origins_pass(tmp_path):
    async def go(client, upstream):
        upstream.responses.append(FakeResponse(200, [("content-type", "application/json")], [ANSWER]))
        resp = await client.post("/v1/messages", json={"model": "claude-opus-4-1"},
                                 headers={"host": "box.lan:18080", "origin": "http://app.local:3000"})
        assert resp.status == 200 and len(upstream.requests) == 1
    run(go, tmp_path, {"CCP_ALLOWED_HOSTS": "box.lan", "CCP_ALLOWED_ORIGINS": "http://app.local:3000"})


def test_a_cross_site_form_post_to_an_admin_endpoint_is_415_and_changes_nothing(tmp_path):
    async def go(client, upstream):
        app = client.server.app
        from proxy.pipeline.state import STATE
        state = app[STATE]
        form = "session_token=t&sandbox_id=s&task_name=x"
        for path, ctype, body in (
            ("/v1/sessions", "text/plain", '{"session_token": "t", "sandbox_id": "s"}'),
            ("/v1/sessions", "application/x-www-form-urlencoded", form),
            ("/v1/admin/controls", "text/plain", '{"paused": true}'),
            ("/v1/admin/logs-rotate", "text/plain", ""),
            ("/v1/quotas/reload", "multipart/form-data; boundary=x", "--x--"),
        ):
            resp = await client.post(path, data=body, headers={"content-type": ctype})
            assert resp.status == 415, path
            assert "application/json" in (await resp.json())["error"]["message"]
        assert not state.sessions.list() and not state.controls.paused
        resp = await client.post("/v1/admin/controls", json={"paused": True})  # JSON: fine
        assert resp.status == 200 and state.controls.paused
        assert (await client.post("/v1/nope", data="x", headers={"content-type": "text/plain"})).status == 404
    run(go, tmp_path)


def test_the_admin_token_is_never_forwarded_nor_used_as_a_lane_credential(tmp_path):
    async def go(client, upstream):
        for headers in ({"authorization": "Bearer adm-SECRET"}, {"x-api-key": "adm-SECRET"},
                        {"x-ccp-admin-token": "adm-SECRET", "x-ccp-actor": "me"}):
            upstream.responses.append(FakeResponse(200, [("content-type", "application/json")], [ANSWER]))
            resp = await client.post("/v1/messages", json={"model": "claude-opus-4-1"}, headers=headers)
            assert resp.status == 200
        for request in upstream.requests:
            assert "adm-SECRET" not in json.dumps(request.headers)
            assert not [k for k in request.headers if k.startswith("x-ccp")]
            assert request.headers["authorization"] == "Bearer ant-OWN"
    run(go, tmp_path, {"CCP_ADMIN_TOKEN": "adm-SECRET", "ANTHROPIC_AUTH_TOKEN": "ant-OWN"})


def test_an_over_long_model_is_a_400_never_routed_remembered_or_recorded(tmp_path):
    async def go(client, upstream):
        from proxy.pipeline.state import STATE
        state = client.server.app[STATE]
        long_model = "claude-" + "x" * 300
        resp = await client.post("/v1/messages", json={"model": long_model})
        assert resp.status == 400 and "CCP_MAX_NAME_CHARS" in (await resp.json())["error"]["message"]
        assert upstream.requests == [] and not (state.decisions and state.decisions[1])
        upstream.responses.append(FakeResponse(200, [("content-type", "application/json")], [ANSWER]))
        resp = await client.post("/v1/messages", json={"model": "a" * 20},
                                 headers={"x-claude-code-session-id": "s" * 5000})
        assert resp.status == 200

    recs = run(go, tmp_path, {"CCP_MAX_NAME_CHARS": "32"})
    assert recs[0]["status"] == 400 and recs[0]["model"] is None
    assert "x" * 33 not in json.dumps(recs[0])
    assert len(recs[1]["client_session"]) <= 33


def test_the_decision_cache_is_bounded_in_bytes(tmp_path):
    async def go(client, upstream):
        from proxy.pipeline.prepare import DECISION_OVERHEAD_BYTES, _decided
        from proxy.pipeline.state import STATE
        state = client.server.app[STATE]
        for i in range(200):
            _decided(state, state.settings, f"claude-{i:03d}-" + "m" * 100, "anthropic")
        kept = state.decisions[1]
        assert 0 < len(kept) < 200
        assert state.decision_bytes <= 64 * 1024
        assert state.decision_bytes >= len(kept) * DECISION_OVERHEAD_BYTES
        # past the bound, a model is still decided, only not remembered
        decision = _decided(state, state.settings, "claude-haiku-4-5", "anthropic")
        assert decision.lane == "zai" and ("claude-haiku-4-5", "anthropic") not in kept
    run(go, tmp_path, {"CCP_DECISION_CACHE_BYTES": "64KiB"})


def test_an_upstream_answer_past_the_limit_is_cut_with_an_error_and_a_record(tmp_path):
    big = b"x" * 5000

    async def go(client, upstream):
        # a JSON answer that says it is too long is not read
        upstream.responses.append(FakeResponse(
            200, [("content-type", "application/json"), ("content-length", "5000")], [big]))
        resp = await client.post("/v1/messages", json={"model": "claude-opus-4-1"})
        assert resp.status == 502 and "CCP_MAX_RESPONSE_BYTES" in (await resp.json())["error"]["message"]
        assert upstream.responses == [] and upstream.requests
        # a stream is cut before the chunk that crosses the limit, with an error event
        chunks = [SSE[0]] + [b"event: content_block_delta\ndata: {\"t\":\"" + b"y" * 500 + b"\"}\n\n"] * 10
        upstream.responses.append(FakeResponse(200, [("content-type", "text/event-stream")], chunks))
        resp = await client.post("/v1/messages", json={"model": "claude-opus-4-1", "stream": True})
        body = await resp.read()
        assert resp.status == 200 and len(body) < 4096 + 500
        assert body.rstrip().endswith(b"}") and b"event: error" in body
        assert b"CCP_MAX_RESPONSE_BYTES" in body

    recs = run(go, tmp_path, {"CCP_MAX_RESPONSE_BYTES": "4KiB"})
    assert [(r["status"], r["err_type"], r["reason"]) for r in recs] == [
        (502, "net", "upstream_too_large"), (200, "net", "upstream_too_large")]
    assert recs[1]["bytes_out"] <= 4096
