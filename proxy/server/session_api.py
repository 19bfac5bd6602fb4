"""`/v1/sessions`: register, list and end sandbox sessions (admin endpoints).

`POST /v1/sessions` with `{"session_token", "sandbox_id", "task_name"}` → 201 and the session's id
(the name of its trajectory folder). When `CCP_ADMIN_TOKEN` is set, these endpoints want it as
`authorization: Bearer <token>` or `x-ccp-admin-token`. A session token is never shown back.

On a fleet (a PostgreSQL store) the three are the fleet's: a session registered here is honoured by
every shim, the list is the store's active sessions (with the shim that registered each), and
ending one here ends it on every shim within CCP_FLEET_SYNC (proxy.pipeline.sessions). The store
away: 503, and nothing is registered.
"""

from __future__ import annotations

import asyncio
import json
import logging

from aiohttp import web

from proxy.config.settings import Settings
from proxy.core.errors import BadRequest, NotFound, Overloaded
from proxy.pipeline.sessions import SessionError, SessionRegistry
from proxy.server.auth import (  # noqa: F401 - ADMIN_HEADER: the sessions' header too
    ADMIN_HEADER,
    SETTINGS,
    require_admin,
)
from proxy.server.errors import mapped

SESSIONS = web.AppKey("sessions", SessionRegistry)
log = logging.getLogger("ccp.sessions")


class StoreAway(Overloaded):
    """The fleet's session store did not answer: nothing was changed there."""

    error_type = "api_error"
    err_type = "store_unavailable"


def _store_away(exc: Exception) -> StoreAway:
    log.warning("session store unavailable: %s: %s", type(exc).__name__, exc)
    return StoreAway(f"the session store is unavailable ({type(exc).__name__}); try again")


async def create_session(request: web.Request) -> web.Response:
    require_admin(request)
    try:
        data = json.loads(await request.read())
    except ValueError as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise BadRequest("body must be a JSON object")
    limit = request.app[SETTINGS].max_name_chars  # these are logged and name trajectory folders
    for field in ("session_token", "sandbox_id", "task_name"):
        value = data.get(field)
        if isinstance(value, str) and len(value) > limit:
            raise BadRequest(f"{field} is longer than {limit} characters (CCP_MAX_NAME_CHARS)")
    try:
        session = await request.app[SESSIONS].register_shared(
            data.get("session_token"), data.get("sandbox_id"), data.get("task_name")
        )
    except SessionError as exc:
        raise BadRequest(str(exc)) from exc
    except Exception as exc:  # noqa: BLE001 - the store's: psycopg, OSError, a pool timeout
        raise _store_away(exc) from exc
    return web.json_response(
        {**session.public(), "trajectory_dir": f"trajectory/{session.id}"}, status=201
    )


async def list_sessions(request: web.Request) -> web.Response:
    require_admin(request)
    registry = request.app[SESSIONS]
    if registry.shared is not None:
        try:
            rows = await asyncio.to_thread(registry.shared.active)
        except Exception as exc:  # noqa: BLE001
            raise _store_away(exc) from exc
        return web.json_response(
            {
                "sessions": [
                    {
                        "session": r["id"],
                        "sandbox_id": r["sandbox_id"],
                        "task_name": r["task_name"],
                        "created_at": r["created"],
                        "instance": r["instance"],
                    }
                    for r in rows
                ]
            }
        )
    return web.json_response({"sessions": [s.public() for s in registry.list()]})


async def end_session(request: web.Request) -> web.Response:
    require_admin(request)
    try:
        ended = await request.app[SESSIONS].end_shared(request.match_info["session_id"])
    except Exception as exc:  # noqa: BLE001
        raise _store_away(exc) from exc
    if ended is None:
        raise NotFound(f"no session {request.match_info['session_id']!r}")
    return web.json_response({**ended, "ended": True})


def add_routes(app: web.Application, registry: SessionRegistry, settings: Settings) -> None:
    app[SESSIONS] = registry
    app[SETTINGS] = settings
    app.router.add_post("/v1/sessions", mapped(create_session))
    app.router.add_get("/v1/sessions", mapped(list_sessions))
    app.router.add_delete("/v1/sessions/{session_id}", mapped(end_session))
