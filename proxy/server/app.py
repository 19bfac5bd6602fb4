"""The shim's aiohttp front door: the endpoints, and the adapter a model request goes through.

`create_app(settings)` returns the `web.Application`. A model request (`handle_model_request`)
becomes an `Exchange` and runs through the pipeline (proxy.pipeline.run: prepare → send → relay →
finish) with this module's `Inbound` and `Downstream` over aiohttp's request and response. Every
error answer, of any endpoint, is made by proxy.server.errors; the shim never answers a traceback.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterable

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from proxy import protocols
from proxy.config.settings import Settings
from proxy.core.errors import (
    BadRequest,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    RequestTimeout,
    ShimError,
)
from proxy.core.record import Reason, new_record
from proxy.pipeline.relay import ms
from proxy.pipeline.run import CLIENT_SESSION_HEADER, run, start  # noqa: F401 - the header's home
from proxy.pipeline.state import RID_HEADER, STATE, ShimState
from proxy.server.admin_api import add_admin_routes
from proxy.server.auth import require_admin
from proxy.server.connections import BodyTimeout
from proxy.server.errors import RID, answer, mapped, refusal
from proxy.server.readiness import readiness
from proxy.server.session_api import add_routes as add_session_routes
from proxy.server.usage_api import add_usage_routes, start_usage, stop_usage
from proxy.sinks.metrics import CONTENT_TYPE_LATEST
from proxy.upstream.base import Upstream
from proxy.upstream.factory import make_upstream

MODEL_PATHS = protocols.inbound_paths()
MODE = web.AppKey("mode", str)  # "shim", or "mitm" when `ccp mitm` serves the pipeline


class _RelayedStream(web.StreamResponse):
    """A relayed stream whose headers leave with its first chunk when that is already here, and
    whose last chunk leaves with the end of the body: an upstream answer that came in one piece
    (as a short one does) reaches the client in one write instead of three."""

    _send_headers_immediately = False  # (aiohttp's switch; its Response sets it so too)


class AiohttpInbound:
    """The pipeline's view of an aiohttp request."""

    __slots__ = ("_request", "path", "query_string", "content_type", "headers")

    def __init__(self, request: web.Request) -> None:
        self._request = request
        self.path = request.path
        self.query_string = request.query_string
        self.content_type = request.content_type
        self.headers = request.headers

    async def read_body(self, max_bytes: int) -> bytes:
        """The body, whatever its type (aiohttp decodes a content-encoding as the bytes arrive,
        and a body left unread after an early answer can make it drop the connection instead),
        without the copy `request.read()` keeps on the request: the body lives only as long as
        the exchange holds it, and one that came in one piece is not copied at all."""
        content = self._request.content
        content.set_read_chunk_size(max_bytes)  # as request.read(): large bodies in large pieces
        chunks = []
        size = 0
        try:
            while True:
                chunk = await content.readany()
                if not chunk:
                    break
                size += len(chunk)
                if size > max_bytes:
                    raise PayloadTooLarge(
                        f"request body is larger than {max_bytes} bytes (CCP_MAX_BODY_BYTES)"
                    )
                chunks.append(chunk)
        except BodyTimeout as exc:  # the client did not send it in time (proxy.server.connections)
            raise RequestTimeout(str(exc), close_connection=True) from None
        except (HttpProcessingError, RequestPayloadError) as exc:  # e.g. a body that is not gzip
            raise BadRequest(
                f"request body could not be read: {exc}", close_connection=True
            ) from exc
        return b"".join(chunks)  # one bytes piece is returned as it is


class AiohttpDownstream:
    """The pipeline's client: an aiohttp response, whole or streamed.

    Once a stream is open, `write`, `write_last` and `end` are the response's own bound methods:
    a stream's every chunk goes through `write`, and a method of ours around aiohttp's would be
    one more coroutine made and run per chunk."""

    __slots__ = ("_request", "response", "write", "write_last", "end")

    def __init__(self, request: web.Request) -> None:
        self._request = request
        self.response: web.StreamResponse | None = None

    def whole(
        self,
        status: int,
        body: bytes,
        headers: Iterable[tuple[str, str]],
        content_type: str | None = None,
    ) -> None:
        # the headers to the constructor: aiohttp builds its multidict once, not an add() each
        out = web.Response(status=status, body=body, headers=headers)
        if content_type is not None:
            out.content_type = content_type
        self.response = out

    async def open_stream(
        self,
        status: int,
        headers: Iterable[tuple[str, str]],
        first_chunk_ready: bool,
        content_type: str | None = None,
    ) -> None:
        out = _RelayedStream(status=status, headers=headers)
        if content_type is not None:
            out.content_type = content_type
        self.response = out
        self.write, self.write_last, self.end = out.write, out.write_eof, out.write_eof
        await out.prepare(self._request)
        if not first_chunk_ready:  # the first chunk is not here yet: the client has the headers now
            await out.write(b"")


async def handle_model_request(request: web.Request) -> web.StreamResponse:
    """POST /v1/messages, /v1/message, /v1/chat/completions, /v1/messages/count_tokens."""
    refused = refusal(request)  # (the guard every `mapped` endpoint has, called here too)
    if refused is not None:
        return _refused(request, refused)
    ex = start(request.app[STATE], request.path, request.headers)
    request[RID] = ex.rec["rid"]
    down = AiohttpDownstream(request)
    try:
        await run(ex, AiohttpInbound(request), down)
    except ShimError as exc:  # the mapper, called here: this route is not `mapped`
        return answer(request, exc, ex.rec["lane"])  # (no lane: it failed before routing)
    assert down.response is not None
    return down.response


def _refused(request: web.Request, exc: ShimError) -> web.Response:
    """A model request (or one to no endpoint) refused before it was read (a Host, an Origin, an
    overload): one usage record and the answer, in the protocol's shape."""
    state = request.app[STATE]
    t0 = time.perf_counter()
    rec = new_record(state.new_rid(), request.path, protocols.for_path(request.path).name)
    request[RID] = rec["rid"]
    rec["status"] = exc.status
    rec["err_type"] = exc.err_type
    rec["reason"] = Reason.REFUSED
    rec["latency_ms"] = rec["overhead_ms"] = rec["ttfb_ms"] = ms(t0, time.perf_counter())
    state.record(rec)
    return answer(request, exc)


async def handle_unknown(request: web.Request) -> web.Response:  # (raises: answered by the mapper)
    """Any other path or method: the Anthropic error JSON, and a usage record like any request."""
    state = request.app[STATE]
    t0 = time.perf_counter()
    rid = state.new_rid()
    protocol = protocols.for_path(request.path).name
    rec = new_record(rid, request.path, protocol)
    request[RID] = rid
    close = False
    try:  # drain the body: an unread (and possibly undecodable) body can cost the connection
        rec["bytes_in"] = len(await request.read())
    except Exception:  # noqa: BLE001 - whatever it was, the answer is the same 404/405
        close = True
    if request.path in MODEL_PATHS:
        exc: ShimError = MethodNotAllowed(
            f"{request.method} is not allowed on {request.path}; use POST"
        )
    else:
        exc = NotFound(f"no such endpoint: {request.method} {request.path}")
    exc.close_connection = close
    rec["status"] = exc.status
    rec["err_type"] = exc.err_type
    rec["latency_ms"] = rec["overhead_ms"] = rec["ttfb_ms"] = ms(t0, time.perf_counter())
    state.record(rec)
    raise exc


async def handle_root(request: web.Request) -> web.Response:
    rid = request.app[STATE].new_rid()
    return web.Response(text="ccp shim\n", headers={RID_HEADER: rid})


async def handle_healthz(request: web.Request) -> web.Response:
    rid = request.app[STATE].new_rid()
    body = {"ok": True} if request.app[MODE] == "shim" else {"ok": True, "mode": request.app[MODE]}
    return web.json_response(body, headers={RID_HEADER: rid})


async def handle_metrics(request: web.Request) -> web.Response:
    body = request.app[STATE].metrics.render()
    return web.Response(body=body, headers={"content-type": CONTENT_TYPE_LATEST})


async def handle_rotate(request: web.Request) -> web.Response:
    """POST /v1/admin/logs-rotate: rotate the usage log now (admin token when configured)."""
    require_admin(request)
    state = request.app[STATE]
    rotated = state.writer.rotate() if state.writer is not None else None
    return web.json_response({"rotated": str(rotated) if rotated else None})


async def handle_readyz(request: web.Request) -> web.Response:
    state = request.app[STATE]
    assert state.upstream is not None  # (set for the app's lifetime by _resources)
    report = await readiness(state.settings, state.upstream)
    # the sinks' write health (`status`, `degraded`, `sinks`): reported, never a 503 — a shim
    # whose disk is full still answers every request, and an unready one would be taken out
    report.update(state.sinks.report())
    return web.json_response(
        report, status=200 if report["ok"] else 503, headers={RID_HEADER: state.new_rid()}
    )


async def _resources(app: web.Application) -> AsyncIterator[None]:
    state = app[STATE]
    writer = state.open_writer()
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
    writer.close()


def create_app(
    settings: Settings, upstream: Upstream | None = None, mode: str = "shim"
) -> web.Application:
    """The shim as an aiohttp application; `upstream` replaces the real client in tests; `mode`
    "mitm" when `ccp mitm` sends its model flows here (proxy.mitm)."""
    app = web.Application(client_max_size=settings.max_body_bytes)  # (no middleware: errors.mapped)
    app[STATE] = ShimState(settings, upstream)
    app[MODE] = mode
    app.cleanup_ctx.append(_resources)
    for path in MODEL_PATHS:
        app.router.add_post(path, handle_model_request)
    app.router.add_route("HEAD", "/", mapped(handle_root))
    app.router.add_get("/", mapped(handle_root), allow_head=False)
    app.router.add_get("/healthz", mapped(handle_healthz))
    app.router.add_get("/readyz", mapped(handle_readyz))
    app.router.add_get("/metrics", mapped(handle_metrics))
    app.router.add_post("/v1/admin/logs-rotate", mapped(handle_rotate))
    add_session_routes(app, app[STATE].sessions, settings)
    add_usage_routes(app, app[STATE])
    add_admin_routes(app, app[STATE])  # /v1/admin/controls, /v1/admin/providers/reload
    # (any other path or method is recorded, refused or not, as a model request is)
    app.router.add_route(
        "*", "/{tail:.*}", mapped(handle_unknown, admin=False, on_refused=_refused)
    )
    return app
