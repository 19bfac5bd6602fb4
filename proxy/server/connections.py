"""Inbound connections, bounded: a client that is slow to send its request is cut, and the number of
connections served at once may be capped.

aiohttp's server has no read timeout of its own: a connection that trickles its request head one
byte at a time is held for as long as it keeps trickling (its keep-alive timer only closes a
connection that sent nothing). `BoundedHandler` is aiohttp's `RequestHandler` with two timers:

- the head: from the first byte of a request to the end of its head, CCP_CLIENT_HEADER_TIMEOUT;
  past it the connection gets a 408 and is closed (nothing of the request reached a handler);
- the body: from the end of the head to the end of the body, CCP_CLIENT_BODY_TIMEOUT; past it the
  body's reader fails (the model handler answers 408 in the protocol's shape, with a record) and
  the connection is closed after the answer.

Neither timer is armed for a request whose head and body came in one read, which is what a local
client's request almost always does: the usual request costs one attribute check more.
A connection with no request in flight is closed after CCP_CLIENT_IDLE_TIMEOUT (aiohttp's
keep-alive timeout). Past CCP_MAX_CONNECTIONS open connections, a new one is marked `over_cap` and
its requests are answered 503 `overloaded_error` (proxy.server.errors), then it is closed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import NamedTuple

from aiohttp import web
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler, RequestPayloadError

from proxy.config.settings import Settings

log = logging.getLogger("ccp.shim")

# what a client that did not finish its request head in time is told, before the connection closes
_HEAD_LATE = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
    b"content-length: %d\r\n\r\n%s"
)
_HEAD_LATE_BODY = (
    b'{"type":"error","error":{"type":"invalid_request_error","message":"the request head did '
    b'not arrive within CCP_CLIENT_HEADER_TIMEOUT"}}'
)


LINGER_S = 1.0  # how long a cut connection stays half-open after its 408


class BodyTimeout(RequestPayloadError):
    """What a request body's reader raises when the body did not arrive in time."""


class Limits(NamedTuple):
    header_timeout: float
    body_timeout: float
    max_connections: int  # 0: no cap

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        return cls(
            settings.client_header_timeout,
            settings.client_body_timeout,
            settings.max_connections,
        )


class Counters:
    """What the handlers cut, for tests and the log."""

    __slots__ = ("heads_late", "bodies_late", "over_cap")

    def __init__(self) -> None:
        self.heads_late = 0
        self.bodies_late = 0
        self.over_cap = 0


class BoundedHandler(RequestHandler):
    """aiohttp's connection handler with a head timer and a body timer (see the module)."""

    def __init__(self, manager: web.Server, limits: Limits, counters: Counters, **kwargs) -> None:
        super().__init__(manager, **kwargs)
        self.limits = limits
        self.counters = counters
        self.over_cap = False  # read by the endpoints: answer 503, then close
        self._ccp_timer: asyncio.TimerHandle | None = None
        self._ccp_body: StreamReader | None = None  # a request's body still arriving

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        cap = self.limits.max_connections
        super().connection_made(transport)
        manager = self._manager
        if cap and manager is not None and len(manager._connections) > cap:
            self.over_cap = True
            self.counters.over_cap += 1

    def data_received(self, data: bytes) -> None:
        idle = self._ccp_timer is None and self._ccp_body is None
        queued = len(self._messages)
        super().data_received(data)
        messages = self._messages
        if len(messages) > queued:  # a head ended here: its body may still be on its way
            self._stop_timer()
            payload = messages[-1][1]
            if not payload.is_eof():
                self._ccp_body = payload
                self._ccp_timer = self._loop.call_later(self.limits.body_timeout, self._body_late)
        elif self._ccp_body is not None:
            if self._ccp_body.is_eof():
                self._ccp_body = None
                self._stop_timer()
        elif idle and data and not self._force_close:  # a head begun, not ended: its timer starts
            self._ccp_timer = self._loop.call_later(self.limits.header_timeout, self._head_late)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._stop_timer()
        self._ccp_body = None
        super().connection_lost(exc)

    def _stop_timer(self) -> None:
        if self._ccp_timer is not None:
            self._ccp_timer.cancel()
            self._ccp_timer = None

    def _head_late(self) -> None:
        self._ccp_timer = None
        self.counters.heads_late += 1
        log.info(
            "[ccp] cut a connection from %s: no complete request head within %gs "
            "(CCP_CLIENT_HEADER_TIMEOUT)",
            _peer(self),
            self.limits.header_timeout,
        )
        transport = self.transport
        self.transport = None  # (closed below, not by force_close: what comes meanwhile is dropped)
        self.force_close()
        if transport is None:
            return
        transport.write(_HEAD_LATE % (len(_HEAD_LATE_BODY), _HEAD_LATE_BODY))
        if transport.can_write_eof():  # the 408 and an end, then a moment before the close: a
            # byte the client still sends would otherwise turn the close into a reset that can
            # discard the 408 before the client reads it
            transport.write_eof()
            self._loop.call_later(LINGER_S, transport.close)
        else:
            transport.close()

    def _body_late(self) -> None:
        self._ccp_timer = None
        payload, self._ccp_body = self._ccp_body, None
        if payload is None or payload.is_eof():
            return
        self.counters.bodies_late += 1
        log.debug("[ccp] request body from %s late (CCP_CLIENT_BODY_TIMEOUT)", _peer(self))
        # its reader fails now, and the answer (which logs the one line) closes the connection;
        # ended too, so that aiohttp does not go on draining it after the answer
        payload.set_exception(
            BodyTimeout(
                f"the request body did not arrive within {self.limits.body_timeout:g}s "
                "(CCP_CLIENT_BODY_TIMEOUT)"
            )
        )
        payload.feed_eof()
        self.close()  # (what still comes is dropped: nothing more is parsed on this connection)


def _peer(handler: RequestHandler) -> str:
    transport = handler.transport
    peer = transport.get_extra_info("peername") if transport is not None else None
    return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else "?"


class BoundedServer(web.Server):
    """aiohttp's Server, making BoundedHandlers (`runner()` sets `limits` and `counters`)."""

    limits: Limits
    counters: Counters

    def __call__(self) -> RequestHandler:
        return BoundedHandler(self, self.limits, self.counters, loop=self._loop, **self._kwargs)


class BoundedRunner(web.AppRunner):
    """An AppRunner whose connections are BoundedHandlers."""

    def __init__(self, app: web.Application, settings: Settings, **kwargs) -> None:
        kwargs.setdefault("keepalive_timeout", settings.client_idle_timeout)
        super().__init__(app, **kwargs)
        self.limits = Limits.of(settings)
        self.counters = Counters()

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = BoundedServer  # (the same object; only how it makes handlers changes)
        server.limits = self.limits  # type: ignore[attr-defined]
        server.counters = self.counters  # type: ignore[attr-defined]
        return server
