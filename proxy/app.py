"""The shim's aiohttp application: endpoints, and the one path a model request takes.

`create_app(settings)` returns the `web.Application`. A model request goes: read and check the body →
`decide()` → lane headers → `Upstream.send()` → relay (bytes as they arrive for SSE, the whole body
otherwise) → one usage record, written in a `finally` so that errors, upstream failures and client
disconnects are recorded too. `_error_response()` is the one place that maps an error to its status and
the protocol's error JSON; the shim never answers a traceback.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from typing import AsyncIterator

from aiohttp import web

from proxy.errors import (BadRequest, MethodNotAllowed, NotFound, PayloadTooLarge, ShimError,
                          Unauthorized, UnsupportedMediaType, error_body)
from proxy.headers import LaneCredentials, client_response_headers, upstream_request_headers
from proxy.readiness import readiness
from proxy.routing import LANE_ZAI, RequestMeta, decide
from proxy.relay import relay_body, relay_stream
from proxy.session_api import add_routes as add_session_routes
from proxy.sessions import Session, SessionRegistry, inbound_tokens
from proxy.settings import Settings
from proxy.sse import assemble_message
from proxy.thinking import (SignatureBook, might_carry_thinking, reserialize, signatures_in_message,
                            strip_foreign_thinking)
from proxy.trajectory import TrajectoryWriter, parse_json_or_text
from proxy.upstream import AiohttpUpstream, Upstream, UpstreamRequest
from proxy.usage import UsageWriter, new_record

log = logging.getLogger("ccp.shim")

MODEL_PATHS = ("/v1/messages", "/v1/message")
RID_HEADER = "x-ccp-request-id"
LANE_HEADER = "x-ccp-lane"
# Claude Code names its session in this header (the `session_id` of its JSON output), which lets a
# harness find the record of a CLI call without guessing.
CLIENT_SESSION_HEADER = "x-claude-code-session-id"


class ShimState:
    """What every request needs, built once per app."""

    def __init__(self, settings: Settings, upstream: Upstream | None) -> None:
        self.settings = settings
        self.upstream: Upstream | None = upstream
        self.writer: UsageWriter | None = None
        self.sessions = SessionRegistry()
        self.trajectories = TrajectoryWriter(settings.logs_dir)
        self.signatures = SignatureBook()
        self.creds = LaneCredentials(
            zai_api_key=settings.zai_api_key.reveal(),
            anthropic_auth_token=settings.anthropic_auth_token.reveal(),
            anthropic_api_key=settings.anthropic_api_key.reveal(),
            zai_header_mode=settings.zai_header_mode)
        self._rid_prefix = os.urandom(4).hex()
        self._rid_count = 0

    def new_rid(self) -> str:
        self._rid_count += 1
        return f"{self._rid_prefix}-{self._rid_count:06d}"


STATE = web.AppKey("state", ShimState)


def _error_response(exc: ShimError, rid: str, protocol: str = "anthropic",
                    lane: str | None = None) -> web.Response:
    headers = {RID_HEADER: rid, LANE_HEADER: lane} if lane else {RID_HEADER: rid}
    return web.Response(status=exc.status, body=error_body(exc.error_type, exc.message, protocol),
                        content_type="application/json", headers=headers)


def _ms(start: float, end: float) -> float:
    return round((end - start) * 1000.0, 3)


async def handle_model_request(request: web.Request) -> web.StreamResponse:
    """POST /v1/messages (and /v1/message): route, relay, record."""
    state = request.app[STATE]
    t0 = time.perf_counter()
    rid = state.new_rid()
    rec = new_record(rid, request.path)
    rec["client_session"] = request.headers.get(CLIENT_SESSION_HEADER)
    timing: dict = {"t0": t0, "sent": None, "upstream_done": None}
    trace: dict = {}  # a session's trajectory: filled by _exchange, written in `finally`
    try:
        return await _exchange(request, state, rec, timing, trace)
    except ShimError as exc:
        rec["status"] = exc.status
        rec["err_type"] = rec["err_type"] or exc.err_type
        log.warning("[%s] %s %s -> %d %s: %s", rid, request.method, request.path, exc.status,
                    exc.err_type, exc.message)
        return _error_response(exc, rid, lane=rec["lane"])
    except asyncio.CancelledError:
        rec["err_type"] = rec["err_type"] or "client_abort"
        rec["reason"] = rec["reason"] or "client_disconnected"
        rec["status"] = rec["status"] or 499
        raise
    except Exception as exc:  # a bug: answer in the protocol's shape, keep serving
        log.exception("[%s] unexpected error", rid)
        rec["status"] = 500
        rec["err_type"] = rec["err_type"] or "internal"
        return _error_response(ShimError(f"internal error in the shim ({type(exc).__name__})"), rid)
    finally:
        t_end = time.perf_counter()
        rec["latency_ms"] = _ms(t0, t_end)
        if timing["sent"] is not None:
            pre = timing["sent"] - t0
            post = t_end - (timing["upstream_done"] or t_end)
            rec["overhead_ms"] = round((pre + post) * 1000.0, 3)
        else:
            rec["overhead_ms"] = rec["latency_ms"]
        if rec.get("ttfb_ms") is None and rec["status"] and rec["status"] < 499:
            rec["ttfb_ms"] = rec["latency_ms"]
        if trace.get("ts"):
            _write_answer(state, rec, timing, trace)
        if state.writer is not None:
            state.writer.write(rec)


def _write_answer(state: ShimState, rec: dict, timing: dict, trace: dict) -> None:
    """The answer half of a trajectory pair, also when the exchange failed."""
    if timing.get("tee") is not None and timing["tee"]:
        raw = b"".join(timing["tee"])
        upstream = {"message": assemble_message(raw), "events": raw.decode("utf-8", "replace")}
    elif timing.get("body") is not None:
        upstream = parse_json_or_text(timing["body"])
    else:
        upstream = None
    meta = {"rid": rec["rid"], "session": rec["session"], "status": rec["status"],
            "upstream_status": rec["upstream_status"], "err_type": rec["err_type"],
            "reason": rec["reason"]}
    try:
        # passthrough: what went down is what came up (conversion fills its own downstream)
        state.trajectories.write_answer(trace["session"], trace["ts"], meta, upstream,
                                        trace.get("downstream", upstream), trace["secrets"])
    except OSError:
        log.exception("[%s] could not write the trajectory answer", rec["rid"])


def _session_of(request: web.Request, state: ShimState) -> Session | None:
    for token in inbound_tokens(request.headers.items()):
        session = state.sessions.for_token(token)
        if session is not None:
            return session
    if state.settings.require_session:
        raise Unauthorized("this shim requires a registered session token (CCP_REQUIRE_SESSION=1)")
    return None


async def _read_payload(request: web.Request, rec: dict) -> tuple[bytes, dict]:
    if request.content_type != "application/json":
        raise UnsupportedMediaType(
            f"content-type must be application/json, got {request.content_type or 'none'}")
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise PayloadTooLarge(f"request body is larger than {request.app[STATE].settings.max_body_bytes}"
                              " bytes (CCP_MAX_BODY_BYTES)") from exc
    rec["bytes_in"] = len(body)
    try:
        payload = json.loads(body)
    except ValueError as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise BadRequest("request body must be a JSON object")
    model = payload.get("model")
    if not isinstance(model, str) or not model.strip():
        raise BadRequest("model: field required (a non-empty string)")
    return body, payload


async def _exchange(request: web.Request, state: ShimState, rec: dict,
                    timing: dict, trace: dict) -> web.StreamResponse:
    settings = state.settings
    session = _session_of(request, state)
    if session is not None:
        rec["session"] = session.id
    body, payload = await _read_payload(request, rec)
    model = payload["model"]
    stream = payload.get("stream") is True
    rec["model"] = model
    rec["op"] = "stream" if stream else "nonstream"

    decision = decide(RequestMeta(model=model), settings.routing)
    rec.update(lane=decision.lane, provider=decision.provider, decision=decision.reason,
               upstream_model=decision.upstream_model, protocol_out="anthropic")
    if decision.lane == LANE_ZAI:
        rec["header_mode"] = settings.zai_header_mode
        base = settings.zai_base_url
    else:
        base = settings.anthropic_base_url
    url = base + "/v1/messages"
    if request.query_string:
        url += "?" + request.query_string
    if might_carry_thinking(body):
        stripped = strip_foreign_thinking(payload, decision.lane, state.signatures)
        if stripped:  # the one same-protocol rewrite: thinking another lane signed
            body = reserialize(payload)
            rec["rewrites"] = [f"stripped_foreign_thinking:{stripped}"]
    headers = upstream_request_headers(decision.lane, request.headers.items(), state.creds,
                                       state.sessions.tokens())
    up_req = UpstreamRequest("POST", url, headers, body, stream)
    if session is not None:
        _write_query(state, session, rec, payload, trace)
        if stream:
            timing["tee"] = []
    rec["upstream"] = up_req.host

    assert state.upstream is not None
    timing["sent"] = time.perf_counter()
    resp = await state.upstream.send(up_req)
    rec["upstream_status"] = resp.status
    rec["h2"] = resp.h2
    if resp.status >= 400:
        rec["err_type"] = "upstream_5xx" if resp.status >= 500 else "upstream_4xx"
    rec["status"] = resp.status
    out_headers = client_response_headers(resp.headers)
    out_headers.append((RID_HEADER, rec["rid"]))
    out_headers.append((LANE_HEADER, decision.lane))
    if resp.is_sse:
        out = await relay_stream(request, resp, out_headers, rec, timing)
        state.signatures.learn(timing.get("signatures") or (), decision.lane)
        return out
    out = await relay_body(resp, out_headers, rec, timing)
    data = timing.get("body") or b""
    if 200 <= resp.status < 300 and might_carry_thinking(data):
        state.signatures.learn(signatures_in_message(parse_json_or_text(data)), decision.lane)
    return out


def _write_query(state: ShimState, session: Session, rec: dict, payload: dict, trace: dict) -> None:
    trace.update(ts=state.trajectories.new_ts(), session=session.id,
                 secrets=[*state.settings.secrets(), *state.sessions.tokens()])
    meta = {"rid": rec["rid"], "session": session.id, "sandbox_id": session.sandbox_id,
            "task_name": session.task_name, "route": rec["lane"], "provider": rec["provider"],
            "model": rec["model"], "upstream_model": rec["upstream_model"], "path": rec["path"]}
    try:
        state.trajectories.write_query(session.id, trace["ts"], payload, meta, trace["secrets"])
    except OSError:
        log.exception("[%s] could not write the trajectory query", rec["rid"])


async def handle_unknown(request: web.Request) -> web.Response:
    """Any other path or method: the Anthropic error JSON, and a usage record like any request."""
    state = request.app[STATE]
    t0 = time.perf_counter()
    rid = state.new_rid()
    rec = new_record(rid, request.path)
    if request.path in MODEL_PATHS:
        exc: ShimError = MethodNotAllowed(f"{request.method} is not allowed on {request.path}; use POST")
    else:
        exc = NotFound(f"no such endpoint: {request.method} {request.path}")
    rec.update(status=exc.status, err_type=exc.err_type)
    rec["latency_ms"] = rec["overhead_ms"] = rec["ttfb_ms"] = _ms(t0, time.perf_counter())
    log.warning("[%s] %s %s -> %d: %s", rid, request.method, request.path, exc.status, exc.message)
    if state.writer is not None:
        state.writer.write(rec)
    return _error_response(exc, rid)


async def handle_root(request: web.Request) -> web.Response:
    rid = request.app[STATE].new_rid()
    return web.Response(text="ccp shim\n", headers={RID_HEADER: rid})


async def handle_healthz(request: web.Request) -> web.Response:
    rid = request.app[STATE].new_rid()
    return web.json_response({"ok": True}, headers={RID_HEADER: rid})


async def handle_readyz(request: web.Request) -> web.Response:
    state = request.app[STATE]
    report = await readiness(state.settings)
    return web.json_response(report, status=200 if report["ok"] else 503,
                             headers={RID_HEADER: state.new_rid()})


async def _resources(app: web.Application) -> AsyncIterator[None]:
    state = app[STATE]
    state.writer = UsageWriter(state.settings.logs_dir)
    own_upstream = state.upstream is None
    if own_upstream:
        client = AiohttpUpstream(state.settings)
        await client.start()
        state.upstream = client
    yield
    if own_upstream:
        await client.close()
        state.upstream = None
    state.writer.close()


def create_app(settings: Settings, upstream: Upstream | None = None) -> web.Application:
    """The shim as an aiohttp application; `upstream` replaces the real client in tests."""
    app = web.Application(client_max_size=settings.max_body_bytes)
    app[STATE] = ShimState(settings, upstream)
    app.cleanup_ctx.append(_resources)
    for path in MODEL_PATHS:
        app.router.add_post(path, handle_model_request)
    app.router.add_route("HEAD", "/", handle_root)
    app.router.add_get("/", handle_root, allow_head=False)
    app.router.add_get("/healthz", handle_healthz)
    app.router.add_get("/readyz", handle_readyz)
    add_session_routes(app, app[STATE].sessions, settings)
    app.router.add_route("*", "/{tail:.*}", handle_unknown)
    return app
