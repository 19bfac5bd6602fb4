"""An Anthropic upstream mock that breaks a connection at a chosen phase, and counts what arrived.

    with PhaseMock(tls=True) as mock:          # cleartext by default; tls: the throwaway CA
        mock.plan("tls_close", "ok")           # the next connection, then the next request
        ...                                    # send one request through the shim
        mock.copies(nonce)                     # complete copies of that request received
        mock.partials, mock.connections, mock.handshakes

Raw asyncio on 127.0.0.1 and a free port, in its own thread. It speaks HTTP/1.1 and, when a TLS
client offers it by ALPN, HTTP/2 (the h2 library). The plan is a queue of actions, each taken once:

    refuse       a new connection is closed as soon as it is accepted (before any TLS byte)
    tls_close    a new connection is closed once the ClientHello arrived (during the handshake)
    mid_write    a request's head has arrived: the connection is closed, the request is not read
                 to its end (not a copy: counted in `partials`)
    after_write  the whole request is read (a copy), then the connection closes with no answer
    mid_answer   the whole request is read, then status, headers and half the body (of a stream:
                 half its events), then close
    ok           a valid Messages answer (JSON, or SSE when the request says stream), then the
                 connection is ended (HTTP/1.1 `connection: close`; HTTP/2 GOAWAY)
    keep         as ok, but the connection stays open for the next request (`close_idle()`)
    busy         a 429 with `retry-after-ms: 1` (what backoff retries), then the connection ends

`refuse` and `tls_close` are taken by the next new connection, the others by the next POST (a
request on a connection while a connection action is first in the queue is answered `ok`); an
empty plan answers `ok`. A request's identity is the first `nonce-<hex>` in its body: `copies()`
counts the complete ones per nonce. Other methods (a readiness HEAD) get an empty 200 and take
nothing from the plan. Every change notifies `wait_for()`, the way a test waits on the mock.
"""

from __future__ import annotations

import asyncio
import json
import re
import ssl
import tempfile
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import h2.config
import h2.connection
import h2.events
import httptools

from harness.mock_wire import message_json, sse_events
from harness.tls_mock import throwaway_certs

CONNECTION_ACTIONS = frozenset({"refuse", "tls_close"})
REQUEST_ACTIONS = frozenset({"mid_write", "after_write", "mid_answer", "ok", "keep", "busy"})
ACTIONS = CONNECTION_ACTIONS | REQUEST_ACTIONS
_NONCE = re.compile(rb"nonce-[0-9a-f]+")
REPLY = "phase mock answers"


class Request(NamedTuple):
    """One request the mock saw begin."""

    conn: int  # which connection (1, 2, …)
    action: str  # what was done with it
    nonce: str | None  # None when it was not read to its end
    complete: bool  # the whole body arrived
    http_version: str  # "1.1" or "2"
    method: str


def answer(body: bytes) -> tuple[bytes, str]:
    """The answer to a request body: (bytes, content type), SSE when it asks to stream."""
    events, ctype = answer_parts(body)
    return b"".join(events), ctype


def half(payload: bytes, ctype: str) -> bytes:
    """What `mid_answer` sends of an answer: the first half of its SSE events (whole events), or
    the first half of its JSON bytes."""
    if ctype == "text/event-stream":
        events = payload.split(b"\n\n")[:-1]
        return b"".join(e + b"\n\n" for e in events[: len(events) // 2])
    return payload[: len(payload) // 2]


def answer_parts(body: bytes) -> tuple[list[bytes], str]:
    try:
        payload = json.loads(body or b"{}")
    except ValueError:
        payload = {}
    model = str(payload.get("model", "m")) if isinstance(payload, dict) else "m"
    if isinstance(payload, dict) and payload.get("stream"):
        return sse_events(model, REPLY, 3, 10), "text/event-stream"
    return [json.dumps(message_json(model, REPLY, 10, 3)).encode()], "application/json"


class PhaseMock:
    """The mock; start()/stop() or a `with` block. Counters are read from any thread."""

    def __init__(self, tls: bool = False) -> None:
        self.tls = tls
        self._dir = tempfile.TemporaryDirectory(prefix="ccp-phase-mock-") if tls else None
        self.ca_path = ""
        self._ssl: ssl.SSLContext | None = None
        self._plan: deque[str] = deque()
        self._cond = threading.Condition()
        self._copies: Counter[str] = Counter()
        self.requests: list[Request] = []
        self.partials = 0  # requests begun and never read to their end
        self.connections = 0  # TCP connections accepted
        self.handshakes = 0  # TLS handshakes completed
        self.closed = 0  # connections ended (either side)
        self._idle: dict[int, asyncio.StreamWriter] = {}  # connections waiting for a request
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task] = set()  # the connections' handlers
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._stopping: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self.port = 0

    # -- the test's side -----------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def plan(self, *actions: str) -> None:
        """Queue actions (see the module docstring)."""
        unknown = [a for a in actions if a not in ACTIONS]
        if unknown:
            raise ValueError(f"unknown phase actions: {unknown}")
        with self._cond:
            self._plan.extend(actions)

    @property
    def pending(self) -> list[str]:
        """The actions not taken yet."""
        with self._cond:
            return list(self._plan)

    def copies(self, nonce: str) -> int:
        """Complete copies of the request carrying `nonce`."""
        with self._cond:
            return self._copies[nonce]

    def open_connections(self) -> int:
        with self._cond:
            return self.connections - self.closed

    def idle_connections(self) -> int:
        """Connections open and waiting for their next request."""
        with self._cond:
            return len(self._idle)

    def reset(self) -> None:
        """Forget the plan and the counts (not the open connections)."""
        with self._cond:
            self._plan.clear()
            self._copies.clear()
            self.requests.clear()
            self.partials = self.connections = self.handshakes = self.closed = 0

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
        """Wait until `predicate()` (called under the mock's lock) is truthy; TimeoutError if not."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not (value := predicate()):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"phase mock: timed out after {timeout:.1f}s waiting for "
                                       f"{what or predicate}")
                self._cond.wait(left)
            return value

    def close_idle(self, timeout: float = 10.0) -> int:
        """Close every connection waiting for its next request, as an upstream whose keep-alive
        ran out does (no GOAWAY, no answer: the socket goes); returns how many, once closed."""
        assert self._loop is not None, "PhaseMock.start() was not called"
        future = asyncio.run_coroutine_threadsafe(self._close_idle(), self._loop)
        return future.result(timeout)

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> PhaseMock:
        if self._dir is not None:
            certs = throwaway_certs(Path(self._dir.name))
            self.ca_path = certs.ca_path
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(certs.cert_path, certs.key_path)
            context.set_alpn_protocols(["h2", "http/1.1"])
            self._ssl = context
        self._thread = threading.Thread(target=self._run, name="phase-mock", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the phase mock's event loop did not start within 10 s")
        return self

    def stop(self) -> None:
        if self._thread is not None and self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
            self._thread.join(10)
            self._thread = None
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def __enter__(self) -> PhaseMock:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stopping = asyncio.Event()
            self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
            self.port = self._server.sockets[0].getsockname()[1]
            self._ready.set()
            await self._stopping.wait()
            self._server.close()
            for writer in list(self._writers):
                writer.transport.abort()
            await asyncio.gather(*self._tasks, return_exceptions=True)  # they end at the abort
            await self._server.wait_closed()

        asyncio.run(main())

    # -- the mock's side -------------------------------------------------------------------------

    def _take(self, kinds: frozenset[str]) -> str | None:
        """The first action of the plan when it is one of `kinds` (taken), else None."""
        with self._cond:
            if self._plan and self._plan[0] in kinds:
                return self._plan.popleft()
            return None

    def _note(self, **changes: int) -> None:
        with self._cond:
            for name, by in changes.items():
                setattr(self, name, getattr(self, name) + by)
            self._cond.notify_all()

    def _record(self, request: Request) -> None:
        with self._cond:
            self.requests.append(request)
            if request.complete and request.nonce is not None:
                self._copies[request.nonce] += 1
            if not request.complete:
                self.partials += 1
            self._cond.notify_all()

    def _set_idle(self, conn: int, writer: asyncio.StreamWriter | None) -> None:
        with self._cond:
            if writer is None:
                self._idle.pop(conn, None)
            else:
                self._idle[conn] = writer
            self._cond.notify_all()

    async def _close_idle(self) -> int:
        with self._cond:
            idle = list(self._idle.values())
            self._idle.clear()
        for writer in idle:
            writer.transport.abort()  # (nothing to flush; a TLS close would wait for the peer)
        for writer in idle:
            await _closed(writer)
        return len(idle)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with self._cond:
            self.connections += 1
            conn = self.connections
            self._cond.notify_all()
        self._writers.add(writer)
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        try:
            action = self._take(CONNECTION_ACTIONS)
            if action == "refuse":
                return
            version = "1.1"
            if self._ssl is not None:
                if action == "tls_close":
                    await reader.read(1)  # the ClientHello has begun: the handshake is under way
                    return
                await writer.start_tls(self._ssl)
                self._note(handshakes=1)
                tls = writer.get_extra_info("ssl_object")
                version = "2" if tls is not None and tls.selected_alpn_protocol() == "h2" else "1.1"
            if version == "2":
                await self._serve_h2(conn, reader, writer)
            else:
                await self._serve_h1(conn, reader, writer)
        except (ConnectionError, OSError, ssl.SSLError, asyncio.IncompleteReadError):
            pass  # the client went away: what it sent so far is what was recorded
        finally:
            # A close that flushes what was written first (a half answer must arrive). It counts as
            # ended at once: a TLS close then waits for the peer's close_notify, and a client may
            # keep a connection it found broken open for a while (httpcore's HTTP/2 does).
            self._set_idle(conn, None)
            writer.close()
            self._note(closed=1)
            try:
                async with asyncio.timeout(5):
                    await writer.wait_closed()
            except (TimeoutError, ConnectionError, OSError, ssl.SSLError):
                writer.transport.abort()
            self._writers.discard(writer)

    async def _serve_h1(self, conn: int, reader, writer) -> None:
        while True:
            self._set_idle(conn, writer)
            parser = _H1Request()
            data = await reader.read(65536)
            self._set_idle(conn, None)
            if not data:
                return
            action = None
            while True:
                parser.feed(data)
                if parser.head_done and action is None:
                    action = (self._take(REQUEST_ACTIONS) or "ok") if parser.method == "POST" else "-"
                    if action == "mid_write":
                        self._record(Request(conn, action, None, False, "1.1", parser.method))
                        return
                if parser.done:
                    break
                data = await reader.read(65536)
                if not data:  # the client left mid-request
                    self._record(Request(conn, "client_left", None, False, "1.1", parser.method))
                    return
            body = bytes(parser.body)
            assert action is not None
            self._record(Request(conn, action, _nonce(body), True, "1.1", parser.method))
            if action == "-":
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                await writer.drain()
                continue
            if action == "after_write":
                return
            status, payload, ctype = 200, *answer(body)
            if action == "busy":
                status, payload, ctype = 429, _busy_json(), "application/json"
            keep = action == "keep"
            head = (f"HTTP/1.1 {status} {'OK' if status == 200 else 'Too Many Requests'}\r\n"
                    f"content-type: {ctype}\r\ncontent-length: {len(payload)}\r\n"
                    + ("retry-after-ms: 1\r\n" if action == "busy" else "")
                    + ("" if keep else "connection: close\r\n") + "\r\n").encode()
            if action == "mid_answer":
                writer.write(head + half(payload, ctype))
                await writer.drain()
                return
            writer.write(head + payload)
            await writer.drain()
            if not keep:
                return

    async def _serve_h2(self, conn: int, reader, writer) -> None:
        h2conn = h2.connection.H2Connection(
            config=h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
        h2conn.initiate_connection()
        writer.write(h2conn.data_to_send())
        streams: dict[int, dict[str, Any]] = {}
        try:
            while True:
                await writer.drain()
                if not streams:
                    self._set_idle(conn, writer)
                data = await reader.read(65536)
                self._set_idle(conn, None)
                if not data:
                    return
                for event in h2conn.receive_data(data):
                    if isinstance(event, h2.events.RequestReceived):
                        method = dict(event.headers).get(":method", "")
                        action = (self._take(REQUEST_ACTIONS) or "ok") if method == "POST" else "-"
                        streams[event.stream_id] = {"action": action, "method": method,
                                                    "body": bytearray()}
                        if action == "mid_write":
                            self._record(Request(conn, action, None, False, "2", method))
                            streams.clear()
                            return
                    elif isinstance(event, h2.events.DataReceived):
                        h2conn.acknowledge_received_data(event.flow_controlled_length,
                                                         event.stream_id)
                        if event.stream_id in streams:
                            streams[event.stream_id]["body"] += event.data
                    elif isinstance(event, h2.events.StreamEnded):
                        if self._h2_complete(conn, h2conn, event.stream_id, streams):
                            writer.write(h2conn.data_to_send())
                            await writer.drain()
                            return
                    elif isinstance(event, h2.events.ConnectionTerminated):
                        return
                writer.write(h2conn.data_to_send())
        finally:
            for stream in streams.values():  # begun, never ended
                self._record(Request(conn, "client_left", None, False, "2", stream["method"]))

    def _h2_complete(self, conn: int, h2conn, stream_id: int, streams: dict) -> bool:
        """A request stream ended: record it and answer; True when the connection is to end."""
        stream = streams.pop(stream_id, None)
        if stream is None:
            return False
        action, body = stream["action"], bytes(stream["body"])
        self._record(Request(conn, action, _nonce(body), True, "2", stream["method"]))
        if action == "after_write":
            return True
        if action == "-":
            h2conn.send_headers(stream_id, [(":status", "200")], end_stream=True)
            return False
        payload, ctype = answer(body)
        headers = [(":status", "200"), ("content-type", ctype),
                   ("content-length", str(len(payload)))]
        if action == "busy":
            payload = _busy_json()
            headers = [(":status", "429"), ("content-type", "application/json"),
                       ("retry-after-ms", "1"), ("content-length", str(len(payload)))]
        h2conn.send_headers(stream_id, headers)
        if action == "mid_answer":
            _h2_data(h2conn, stream_id, half(payload, ctype), end=False)
            return True
        _h2_data(h2conn, stream_id, payload, end=True)
        if action != "keep":
            h2conn.close_connection()
            return True
        return False


class _H1Request:
    """One HTTP/1.1 request as it arrives (httptools)."""

    def __init__(self) -> None:
        self.head_done = False
        self.done = False
        self.body = bytearray()
        self.method = ""
        self._parser = httptools.HttpRequestParser(self)

    def feed(self, data: bytes) -> None:
        self._parser.feed_data(data)

    def on_headers_complete(self) -> None:
        self.head_done = True
        self.method = self._parser.get_method().decode("ascii", "replace")

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.done = True


def _nonce(body: bytes) -> str | None:
    found = _NONCE.search(body)
    return found.group().decode() if found else None


def _busy_json() -> bytes:
    return json.dumps({"type": "error", "error": {"type": "rate_limit_error",
                                                  "message": "phase mock: busy"}}).encode()


def _h2_data(h2conn, stream_id: int, payload: bytes, end: bool) -> None:
    size = h2conn.max_outbound_frame_size
    for at in range(0, len(payload), size):
        h2conn.send_data(stream_id, payload[at:at + size])
    if end:
        h2conn.end_stream(stream_id)


async def _closed(writer: asyncio.StreamWriter) -> None:
    try:
        await writer.wait_closed()
    except (ConnectionError, OSError, ssl.SSLError):
        pass
