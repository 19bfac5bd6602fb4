"""The runtime-control endpoints: change what the running shim does without a restart.

- `GET  /v1/admin/controls`          paused, the zai header mode, the model override and the catalog
                                     (files, providers, routes, when loaded), each with where its
                                     value came from (env / file / policy / default / runtime, who
                                     and when) and the valid choices
- `POST /v1/admin/controls`          `{"paused": true}`, `{"zai_header_mode": "bearer"}`,
                                     `{"model": "NAME"}` or `{"model": null}` (several at once are
                                     checked together, then applied together)
- `POST /v1/admin/providers/reload`  read the environment's routes/providers files again; an
                                     invalid file (or one that strands the override in force) → 400
                                     and the old catalog stays

A change applies from the next request (proxy.pipeline.state: one snapshot per change); each real change is
logged and written as one usage record (`op: control`, `decision: control_change`, `control:
{name, from, to, by}`). Bad values get a 400 in the Anthropic error shape naming the valid
choices; with `CCP_ADMIN_TOKEN` set every endpoint here wants it (proxy.server.session_api).
`x-ccp-actor` (the `ccp` verb that called) is added to the record's `by`.
"""

from __future__ import annotations

import asyncio
import json
import logging

from aiohttp import web

from proxy.core.errors import BadRequest
from proxy.pipeline import controls as rc
from proxy.pipeline.state import RID_HEADER, ShimState
from proxy.server.auth import SETTINGS, require_admin
from proxy.server.errors import mapped

log = logging.getLogger("ccp.control")

CONTROLS_PATH = "/v1/admin/controls"
PROVIDERS_RELOAD_PATH = "/v1/admin/providers/reload"
ACTOR_HEADER = "x-ccp-actor"
ADMIN_STATE = web.AppKey("admin_state", ShimState)
_ACTOR_MAX = 80


def who(request: web.Request) -> str:
    """`POST /v1/admin/controls`, with the caller's own name when it gave one (`ccp pause`)."""
    actor = "".join(ch for ch in request.headers.get(ACTOR_HEADER, "") if ch.isprintable())
    actor = actor.strip()[:_ACTOR_MAX]
    where = f"{request.method} {request.path}"
    return f"{where} ({actor})" if actor else where


def _json(state: ShimState, data: object) -> web.Response:
    return web.json_response(data, headers={RID_HEADER: state.new_rid()})


async def _body(request: web.Request) -> object:
    raw = await request.read()
    try:
        return json.loads(raw) if raw.strip() else {}
    except ValueError as exc:
        raise BadRequest(f"nothing changed: the body is not valid JSON: {exc}") from None


def _answer(state: ShimState, changes: list[rc.Change]) -> dict:
    return {
        "changed": [{"control": c.control, "from": c.old, "to": c.new} for c in changes],
        "controls": rc.public(state.controls),
    }


async def get_controls(request: web.Request) -> web.Response:
    state = request.app[ADMIN_STATE]
    require_admin(request)
    return _json(state, rc.public(state.controls))


async def post_controls(request: web.Request) -> web.Response:
    state = request.app[ADMIN_STATE]
    require_admin(request)
    data = await _body(request)
    try:
        updates = rc.parse_updates(data, state.controls.catalog)
    except ValueError as exc:
        raise BadRequest(f"nothing changed: {exc}") from None
    changes = state.change_controls(updates, who(request), request.path)
    return _json(state, _answer(state, changes))


async def reload_providers(request: web.Request) -> web.Response:
    state = request.app[ADMIN_STATE]
    require_admin(request)
    try:
        fresh = await asyncio.to_thread(state.load_settings)
        change = state.reload_providers(fresh, who(request), request.path)
    except ValueError as exc:  # ConfigError names the file, the key and the value
        log.warning("providers not reloaded: %s", exc)
        raise BadRequest(f"providers not reloaded, the old catalog stays: {exc}") from None
    return _json(state, {"reloaded": True, **_answer(state, [change])})


def add_admin_routes(app: web.Application, state: ShimState) -> None:
    """Mount the runtime-control endpoints (before the catch-all 404 route)."""
    app[ADMIN_STATE] = state
    if (
        SETTINGS not in app
    ):  # the admin-token check reads it (proxy.server.session_api mounts it too)
        app[SETTINGS] = state.base_settings
    app.router.add_get(CONTROLS_PATH, mapped(get_controls))
    app.router.add_post(CONTROLS_PATH, mapped(post_controls))
    app.router.add_post(PROVIDERS_RELOAD_PATH, mapped(reload_providers))
