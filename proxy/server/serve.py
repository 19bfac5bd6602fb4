"""Running the shim as a process: bind, announce the port, serve until told to stop.

`ccp serve --port 0` binds an OS-chosen port and announces it as one JSON line on stdout (and in
`--port-file` when given), so harnesses never guess a port. SIGTERM and SIGINT stop it cleanly: the
listener closes, in-flight requests are cancelled (and recorded as such), the log is closed.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import signal
import socket
import sys
import time
from dataclasses import replace
from pathlib import Path

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage
from aiohttp.web_protocol import RequestHandler, RequestPayloadError
from aiohttp.web_request import BaseRequest

from proxy import protocols
from proxy.config.policy import load_for
from proxy.config.settings import Settings
from proxy.core.record import ErrType, new_record
from proxy.core.redact import REQUEST_SECRETS, RedactingFilter
from proxy.core.trust import is_loopback
from proxy.licence.verify import log_line
from proxy.pipeline.state import RID_HEADER, STATE, ShimState
from proxy.protocols import ANTHROPIC
from proxy.server.app import create_app
from proxy.server.connections import BoundedHandler, BoundedRunner, BoundedServer
from proxy.sinks.usage_log import check_writable

log = logging.getLogger("ccp.shim")
QUIET_LIBRARIES = ("httpx", "httpcore", "hpack", "h2", "aiohttp.client")


def describe(settings: Settings) -> str:
    """One startup line: where each lane goes and the toggles (never a secret)."""
    creds = [
        name
        for name, s in (
            ("ZAI_API_KEY", settings.zai_api_key),
            ("ANTHROPIC_AUTH_TOKEN", settings.anthropic_auth_token),
            ("ANTHROPIC_API_KEY", settings.anthropic_api_key),
        )
        if s
    ]
    return (
        f"lanes anthropic={settings.anthropic_base_url} zai={settings.zai_base_url} "
        f"force_haiku_to_zai={int(settings.force_haiku_to_zai)} "
        f"offload_paused={int(settings.offload_paused)} zai_header_mode={settings.zai_header_mode} "
        f"credentials=[{','.join(creds)}] logs={settings.logs_dir} "
        f"max_body={settings.max_body_bytes}"
    )


# Every request allocates and drops a few hundred small containers (frames, futures, dicts, the
# parsed body); with CPython's default young-generation threshold (700) the cyclic collector ran every
# few dozen requests and re-walked everything in flight (a measurable share of the CPU, more
# while 1,000 streams are held. Most of that garbage is freed by reference counting anyway.
GC_YOUNG_THRESHOLD = 10_000


def tune_gc() -> None:
    """Once the shim is up: what exists now (modules, settings, the app) is kept out of every later
    collection (`gc.freeze()`), and the young generation is collected every GC_YOUNG_THRESHOLD
    allocations instead of every 700."""
    gc.freeze()
    young, older, oldest = gc.get_threshold()
    gc.set_threshold(max(GC_YOUNG_THRESHOLD, young), older, oldest)


def default_instance(port: int) -> str:
    """`<hostname>:<port>` (`<hostname>:pid<pid>` for port 0: the port is chosen later): the name
    a shim's stored rows carry when CCP_INSTANCE is unset."""
    return f"{socket.gethostname()}:{port}" if port else f"{socket.gethostname()}:pid{os.getpid()}"


async def serve(settings: Settings, host: str, port: int, port_file: str | None = None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if not settings.instance:  # which shim wrote a stored row (CCP_INSTANCE)
        settings = replace(settings, instance=default_instance(port))
    app = create_app(settings)
    redact_logs(app[STATE])
    app[STATE].trust.bind(host)  # the address it listens on is a Host it answers to
    runner = _RecordingRunner(app, settings, handler_cancellation=True, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=4096, reuse_address=True)
    await site.start()
    tune_gc()
    bound = runner.addresses[0][1] if runner.addresses else port
    announce = {
        "event": "listening",
        "host": host,
        "port": bound,
        "pid": os.getpid(),
        "url": f"http://{host}:{bound}",
    }
    if port_file:  # written before the announcement, so whoever reads the line finds the file
        Path(port_file).write_text(f"{bound}\n")
    print(json.dumps(announce), flush=True)
    log.info("[ccp] listening on http://%s:%d %s", host, bound, describe(settings))
    try:
        await stop.wait()
    finally:
        log.info("[ccp] stopping")
        await runner.cleanup()


class _RecordingHandler(BoundedHandler):
    """The bounded connection handler (proxy.server.connections), with one change more: a request
    its HTTP parser rejects (a method
    it does not know, a request line or header too long, bad framing) is answered 400 with a
    request id and the Anthropic error JSON (the path it was for is unknown), and recorded."""

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        resp = super().handle_error(request, status, exc, message)
        state = getattr(self._manager, "ccp_state", None)
        if state is None or not isinstance(exc, (BadHttpMessage, RequestPayloadError)):
            return resp
        rec = new_record(state.new_rid(), "", ANTHROPIC)
        rec["status"] = resp.status
        rec["err_type"] = ErrType.BAD_REQUEST
        rec["reason"] = "bad_http"
        rec["latency_ms"] = rec["overhead_ms"] = rec["ttfb_ms"] = 0.0
        state.record(rec)
        text = f"malformed HTTP request: {exc}"[:300]
        body = protocols.get(ANTHROPIC).error_body("invalid_request_error", text)
        out = web.Response(
            status=resp.status,
            body=body,
            headers={RID_HEADER: rec["rid"]},
            content_type="application/json",
        )
        out.force_close()
        return out


class _RecordingServer(BoundedServer):
    ccp_state: ShimState | None = None

    def __call__(self) -> RequestHandler:
        return _RecordingHandler(self, self.limits, self.counters, loop=self._loop, **self._kwargs)


class _RecordingRunner(BoundedRunner):
    """A BoundedRunner whose connections are `_RecordingHandler`s."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _RecordingServer  # (aiohttp has no option for the handler's class)
        assert isinstance(server, _RecordingServer)
        server.ccp_state = self.app[STATE]
        return server


def redact_logs(state: ShimState) -> RedactingFilter:
    """Every handler of the root logger (stderr) masks the shim's secrets, the session tokens and
    the credentials of the request being served in each line it writes."""
    mask = RedactingFilter(lambda: state.redaction_secrets(REQUEST_SECRETS.get()))
    for handler in logging.getLogger().handlers:
        handler.addFilter(mask)
    return mask


class _OneLineBadRequests(logging.Filter):
    """aiohttp logs a full traceback for every malformed request line it rejects itself; a hostile
    client could flood the log with them. Keep one line each."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(
            record.exc_info[1], (BadHttpMessage, RequestPayloadError)
        ):
            record.msg = f"rejected a malformed request: {record.exc_info[1]!s}"[:300]
            record.args = ()
            record.exc_info = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def bind_refusal(settings: Settings, host: str, insecure: bool = False) -> str | None:
    """Why the shim will not listen on `host` (None: it will). A non-loopback address without
    CCP_ADMIN_TOKEN would let anyone who reaches it pause routing, reload files, register sessions
    and spend the lanes' keys: that wants `--insecure-bind` (or CCP_INSECURE_BIND=1) said aloud."""
    if is_loopback(host) or settings.admin_token or insecure or settings.insecure_bind:
        return None
    return (
        f"ConfigError: refusing to listen on {host}, which is not a loopback address, without "
        "CCP_ADMIN_TOKEN: anyone who reaches it could use the admin endpoints and the lanes' "
        "credentials. Set CCP_ADMIN_TOKEN, or pass --insecure-bind (CCP_INSECURE_BIND=1) to "
        "serve it anyway; other hosts' clients also need CCP_ALLOWED_HOSTS"
    )


def prepare(settings: Settings, now: float) -> Settings:
    """The settings to serve with: the policy pack applied (one line on how), the licence logged."""
    httpx_log = logging.getLogger("httpx")
    level = httpx_log.level
    httpx_log.setLevel(logging.WARNING)  # one line per policy outcome, not one per GET
    try:
        settings, outcome = load_for(settings, now)
    finally:
        httpx_log.setLevel(level)
    if outcome is not None:
        log.log(logging.INFO if outcome.source == "remote" else logging.WARNING, outcome.message)
    log.info(log_line(settings.licence, settings.licence_enforce))
    from proxy.server.readiness import destinations

    for alias, decision, problem in destinations(settings):
        if problem:
            log.warning(
                "[ccp] %s turns go to the %s lane, which has %s: each will be refused "
                "(401); set it, or FORCE_HAIKU_TO_ZAI=0 to keep haiku on anthropic",
                alias,
                decision.lane,
                problem,
            )
    return settings


def run(settings: Settings, host: str, port: int, port_file: str | None = None) -> int:
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s"
    )
    logging.getLogger("aiohttp.server").addFilter(_OneLineBadRequests())
    for name in QUIET_LIBRARIES:  # their INFO is a line per request (httpx: "HTTP Request: POST …")
        logging.getLogger(name).setLevel(logging.WARNING)
    check_writable(settings.logs_dir)  # a read-only logs folder: one ConfigError line, exit 2
    settings = prepare(settings, time.time())
    run_loop(serve(settings, host, port, port_file))
    return 0


def run_loop(coro) -> None:
    """asyncio.run on uvloop when it is installed (less CPU per request; docs/performance.md), else on
    asyncio's own loop."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(coro)
        return
    uvloop.run(coro)
