"""The shim's aiohttp application: endpoints, and the one path a model request takes.

`create_app(settings)` returns the `web.Application`. A model request (proxy.pipeline.exchange) goes: read and check the body →
`decide()` → lane headers → `Upstream.send()` → relay (bytes as they arrive for SSE, the whole body
otherwise) → one usage record, written in a `finally` so that errors, upstream failures and client
disconnects are recorded too. `_error_response()` is the one place that maps an error to its status and
the protocol's error JSON; the shim never answers a traceback.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import AsyncIterator

from aiohttp import web

from proxy.config.settings import Settings
from proxy.core.errors import MethodNotAllowed, NotFound, ShimError, error_body
from proxy.core.record import new_record
from proxy.pipeline.exchange import exchange, protocol_of, write_answer
from proxy.pipeline.relay import ms
from proxy.pipeline.state import LANE_HEADER, RID_HEADER, STATE, ShimState
from proxy.server.admin_api import add_admin_routes
from proxy.server.readiness import readiness
from proxy.server.session_api import add_routes as add_session_routes
from proxy.server.usage_api import add_usage_routes, start_usage, stop_usage
from proxy.sinks.metrics import CONTENT_TYPE_LATEST
from proxy.upstream.base import Upstream
from proxy.upstream.factory import make_upstream

log = logging.getLogger("ccp.shim")

MODEL_PATHS = ("/v1/messages", "/v1/message", "/v1/chat/completions", "/v1/messages/count_tokens")
# Claude Code names its session in this header (the `session_id` of its JSON output), which lets a
# harness find the record of a CLI call without guessing.
CLIENT_SESSION_HEADER = "x-claude-code-session-id"


def _error_response(exc: ShimError, rid: str, protocol: str = "anthropic",
                    lane: str | None = None) -> web.Response:
    headers = {RID_HEADER: rid, LANE_HEADER: lane} if lane else {RID_HEADER: rid}
    return web.Response(status=exc.status, body=error_body(exc.error_type, exc.message, protocol),
                        content_type="application/json", headers=headers)


async def handle_model_request(request: web.Request) -> web.StreamResponse:
    """POST /v1/messages, /v1/message, /v1/chat/completions, /v1/messages/count_tokens."""
    state = request.app[STATE]
    t0 = time.perf_counter()
    rid = state.new_rid()
    protocol = protocol_of(request.path)
    rec = new_record(rid, request.path, protocol)
    rec["client_session"] = request.headers.get(CLIENT_SESSION_HEADER)
    timing: dict = {"t0": t0, "sent": None, "upstream_done": None}
    trace: dict = {}  # a session's trajectory: filled by exchange(), written in `finally`
    try:
        return await exchange(request, state, rec, timing, trace)
    except ShimError as exc:
        rec["status"] = exc.status
        rec["err_type"] = rec["err_type"] or exc.err_type
        log.warning("[%s] %s %s -> %d %s: %s", rid, request.method, request.path, exc.status,
                    exc.err_type, exc.message)
        response = _error_response(exc, rid, protocol, lane=rec["lane"])
        if exc.close_connection:
            response.force_close()  # says `Connection: close`, so the client does not reuse it
        return response
    except asyncio.CancelledError:
        rec["err_type"] = rec["err_type"] or "client_abort"
        rec["reason"] = rec["reason"] or "client_disconnected"
        rec["status"] = rec["status"] or 499
        raise
    except Exception as exc:  # a bug: answer in the protocol's shape, keep serving
        log.exception("[%s] unexpected error", rid)
        rec["status"] = 500
        rec["err_type"] = rec["err_type"] or "internal"
        return _error_response(ShimError(f"internal error in the shim ({type(exc).__name__})"), rid,
                               protocol)
    finally:
        t_end = time.perf_counter()
        rec["latency_ms"] = ms(t0, t_end)
        if timing["sent"] is not None:
            pre = timing["sent"] - t0
            post = t_end - (timing["upstream_done"] or t_end)
            rec["overhead_ms"] = round((pre + post) * 1000.0, 3)
        else:
            rec["overhead_ms"] = rec["latency_ms"]
        if rec.get("ttfb_ms") is None and rec["status"] and rec["status"] < 499:
            rec["ttfb_ms"] = rec["latency_ms"]
        if trace.get("ts"):
            write_answer(state, rec, timing, trace)
        if state.settings.body_tee and timing.get("payload") is not None:
            _tee(state, rec, timing)
        state.record(rec)


def _tee(state: ShimState, rec: dict, timing: dict) -> None:
    from proxy.sinks.tee import write_tee
    head = timing.get("body") or b"".join(timing.get("tee") or [])[:4096]
    try:
        write_tee(state.settings.logs_dir, rec["rid"], timing["payload"], head,
                  state.redaction_secrets(timing.get("credentials") or ()))
    except OSError:
        log.exception("[%s] could not write the body tee", rec["rid"])


async def handle_unknown(request: web.Request) -> web.Response:
    """Any other path or method: the Anthropic error JSON, and a usage record like any request."""
    state = request.app[STATE]
    t0 = time.perf_counter()
    rid = state.new_rid()
    protocol = protocol_of(request.path)
    rec = new_record(rid, request.path, protocol)
    close = False
    try:  # drain the body: an unread (and possibly undecodable) body can cost the connection
        rec["bytes_in"] = len(await request.read())
    except Exception:  # noqa: BLE001 - whatever it was, the answer is the same 404/405
        close = True
    if request.path in MODEL_PATHS:
        exc: ShimError = MethodNotAllowed(f"{request.method} is not allowed on {request.path}; use POST")
    else:
        exc = NotFound(f"no such endpoint: {request.method} {request.path}")
    rec.update(status=exc.status, err_type=exc.err_type)
    rec["latency_ms"] = rec["overhead_ms"] = rec["ttfb_ms"] = ms(t0, time.perf_counter())
    log.warning("[%s] %s %s -> %d: %s", rid, request.method, request.path, exc.status, exc.message)
    state.record(rec)
    response = _error_response(exc, rid, protocol)
    if close:
        response.force_close()
    return response


async def handle_root(request: web.Request) -> web.Response:
    rid = request.app[STATE].new_rid()
    return web.Response(text="ccp shim\n", headers={RID_HEADER: rid})


async def handle_healthz(request: web.Request) -> web.Response:
    rid = request.app[STATE].new_rid()
    return web.json_response({"ok": True}, headers={RID_HEADER: rid})


async def handle_metrics(request: web.Request) -> web.Response:
    body = request.app[STATE].metrics.render()
    return web.Response(body=body, headers={"content-type": CONTENT_TYPE_LATEST})


async def handle_rotate(request: web.Request) -> web.Response:
    """POST /v1/admin/logs-rotate: rotate the usage log now (admin token when configured)."""
    from proxy.server.session_api import _check_admin
    state = request.app[STATE]
    try:
        _check_admin(request)
    except ShimError as exc:
        return _error_response(exc, state.new_rid())
    rotated = state.writer.rotate() if state.writer is not None else None
    return web.json_response({"rotated": str(rotated) if rotated else None})


async def handle_readyz(request: web.Request) -> web.Response:
    state = request.app[STATE]
    report = await readiness(state.settings)
    return web.json_response(report, status=200 if report["ok"] else 503,
                             headers={RID_HEADER: state.new_rid()})


async def _resources(app: web.Application) -> AsyncIterator[None]:
    state = app[STATE]
    state.open_writer()
    usage_task = await start_usage(state)  # the store, the quota book restored from it, rollups
    own_upstream = state.upstream is None
    if own_upstream:
        client = make_upstream(state.settings)
        await client.start()
        state.upstream = client
    yield
    if own_upstream:
        await client.close()
        state.upstream = None
    await stop_usage(state, usage_task)
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
    app.router.add_get("/metrics", handle_metrics)
    app.router.add_post("/v1/admin/logs-rotate", handle_rotate)
    add_session_routes(app, app[STATE].sessions, settings)
    add_usage_routes(app, app[STATE])
    add_admin_routes(app, app[STATE])  # /v1/admin/controls, /v1/admin/providers/reload
    app.router.add_route("*", "/{tail:.*}", handle_unknown)
    return app
