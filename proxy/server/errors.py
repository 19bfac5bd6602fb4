"""The one mapper from an error to its answer: status, the protocol's error JSON, the request id.

Handlers raise `ShimError`; `error_middleware` answers it in the shape of the protocol the path
speaks (proxy.protocols), with the request's id and lane when the pipeline gave them, and logs one
line. Nothing else in the server builds an error body.
"""

from __future__ import annotations

import logging

from aiohttp import web

from proxy import protocols
from proxy.core.errors import ShimError
from proxy.pipeline.state import LANE_HEADER, RID_HEADER, STATE

log = logging.getLogger("ccp.shim")

# what a handler leaves on the request for the mapper: the exchange's rid and lane
RID = web.RequestKey("ccp_rid", str)
LANE = web.RequestKey("ccp_lane", str)


def error_response(
    exc: ShimError, rid: str, protocol: str = protocols.ANTHROPIC, lane: str | None = None
) -> web.Response:
    headers = {RID_HEADER: rid, LANE_HEADER: lane} if lane else {RID_HEADER: rid}
    body = protocols.get(protocol).error_body(exc.error_type, exc.message)
    response = web.Response(
        status=exc.status, body=body, content_type="application/json", headers=headers
    )
    if exc.close_connection:
        response.force_close()  # says `Connection: close`, so the client does not reuse it
    return response


@web.middleware
async def error_middleware(request: web.Request, handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ShimError as exc:
        state = request.app.get(STATE)
        rid = request.get(RID) or (state.new_rid() if state is not None else "-")
        log.warning(
            "[%s] %s %s -> %d %s: %s",
            rid,
            request.method,
            request.path,
            exc.status,
            exc.err_type,
            exc.message,
        )
        return error_response(exc, rid, protocols.for_path(request.path).name, request.get(LANE))


def use_error_mapper(app: web.Application) -> None:
    """Have `app` answer raised ShimErrors through the mapper (once, whoever adds routes first)."""
    if error_middleware not in app.middlewares:
        app.middlewares.append(error_middleware)
