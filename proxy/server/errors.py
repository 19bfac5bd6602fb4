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
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from proxy import protocols
from proxy.core.errors import (
    BadRequest,
    Overloaded,
    PayloadTooLarge,
    RequestTimeout,
    ShimError,
)
from proxy.core.record import clip
from proxy.core.trust import WRITES, admin_write_refusal
from proxy.pipeline.state import LANE_HEADER, RID_HEADER, STATE
from proxy.server.connections import BodyTimeout

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
        clip(request.path),  # (client strings in the log are capped: CCP_MAX_NAME_CHARS)
        exc.status,
        exc.err_type,
        clip(exc.message, LOGGED_MESSAGE_CHARS),
    )
    lane = lane or request.get(LANE)
    return error_response(exc, rid, protocols.for_path(request.path).name, lane)


LOGGED_MESSAGE_CHARS = 1000  # an error message in the log line (it may quote the client)


def refusal(request: web.Request) -> ShimError | None:
    """What every request is refused for before its handler runs (None: it may go on): a `Host`
    or `Origin` the shim does not answer to (proxy.core.trust), or a connection past
    CCP_MAX_CONNECTIONS. The body is left unread: the answer closes the connection."""
    state = request.app.get(STATE)
    refused = state.trust.refusal(request.headers) if state is not None else None
    if refused is None and getattr(request.protocol, "over_cap", False):
        refused = Overloaded("the shim is serving CCP_MAX_CONNECTIONS connections; try again")
    if refused is not None:
        refused.close_connection = True
    return refused


async def read_admin_body(request: web.Request) -> None:
    """Read an admin write's body now (aiohttp keeps it for the handler's `read()`/`json()`), so
    a body that is too large, undecodable or late (CCP_CLIENT_BODY_TIMEOUT) is answered here."""
    try:
        await request.read()
    except BodyTimeout as exc:
        raise RequestTimeout(str(exc), close_connection=True) from None
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLarge(
            f"request body is larger than {request.client_max_size} bytes (CCP_MAX_BODY_BYTES)",
            close_connection=True,
        ) from None
    except (HttpProcessingError, RequestPayloadError) as exc:
        raise BadRequest(f"request body could not be read: {exc}", close_connection=True) from None


def mapped(
    handler: Handler,
    admin: bool = True,
    on_refused: Callable[[web.Request, ShimError], web.Response] | None = None,
) -> Handler:
    """`handler`, with the ShimErrors it raises answered by `answer`: how every endpoint but the
    model route is registered. Every request first passes `refusal()`; on an `admin` endpoint a
    write (POST, PUT, PATCH, DELETE) also takes only JSON (proxy.core.trust), so a cross-site
    form post is refused, and its body is read here; `on_refused` answers a `refusal()` itself
    (the catch-all route, which records every request). (Not an aiohttp middleware: with any
    middleware on the app, aiohttp runs two more coroutines on every request, the model requests
    too, which cost 4-5 % of a non-stream request's CPU in `make bench`.)"""

    async def guarded(request: web.Request) -> web.StreamResponse:
        try:
            refused = refusal(request)
            if refused is not None:
                if on_refused is not None:
                    return on_refused(request, refused)
                raise refused
            if admin and request.method in WRITES:
                refused = admin_write_refusal(
                    request.method, request.headers.get("content-type"), request.body_exists
                )
                if refused is not None:
                    refused.close_connection = True
                    raise refused
                if request.body_exists:
                    await read_admin_body(request)
            return await handler(request)
        except ShimError as exc:
            return answer(request, exc)

    guarded.__wrapped__ = handler  # type: ignore[attr-defined]  # (what tests check routes by)
    guarded.__name__ = getattr(handler, "__name__", "guarded")
    return guarded
