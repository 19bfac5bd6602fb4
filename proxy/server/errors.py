"""The one mapper from an error to its answer: status, the protocol's error JSON, the request id.

Handlers raise `ShimError`; `answer` (through `mapped`, which every endpoint is registered with)
answers it in the shape of the protocol the path speaks (proxy.protocols), with the request's id
and lane when the pipeline gave them, and logs one line. Nothing else in the server builds an error
body.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from proxy import protocols
from proxy.core.errors import ShimError
from proxy.pipeline.state import LANE_HEADER, RID_HEADER, STATE

log = logging.getLogger("ccp.shim")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

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


def answer(request: web.Request, exc: ShimError, lane: str | None = None) -> web.Response:
    """The answer to a ShimError raised while serving `request`, with one log line: the mapper
    every endpoint goes through (`mapped`, and the model handler, which calls it itself)."""
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
    lane = lane or request.get(LANE)
    return error_response(exc, rid, protocols.for_path(request.path).name, lane)


def mapped(handler: Handler) -> Handler:
    """`handler`, with the ShimErrors it raises answered by `answer`: how every endpoint but the
    model route is registered. (Not an aiohttp middleware: with any middleware on the app, aiohttp
    runs two more coroutines on every request, the model requests too, which cost 4-5 % of a
    non-stream request's CPU in `make bench`.)"""

    async def guarded(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except ShimError as exc:
            return answer(request, exc)

    guarded.__wrapped__ = handler  # type: ignore[attr-defined]  # (what tests check routes by)
    guarded.__name__ = getattr(handler, "__name__", "guarded")
    return guarded
