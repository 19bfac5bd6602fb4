"""An Anthropic-compatible mock upstream that speaks the real wire protocol byte for byte.

It owns: the Messages API replies (JSON and SSE, built by the pure `message_json` / `sse_events`),
the record of every call (`RecordedCall`, waited on through one `threading.Condition`), scripted
faults (see `harness.mock_faults`), and a small control API under `/_mock/`.

`MockUpstream` runs an aiohttp server on 127.0.0.1 port 0 in its own thread and event loop, for
tests; `main()` runs the same server in the foreground for `ccp mock-upstream`. Routes are
`POST /v1/messages` and `/v1/message`, also under Z.AI's `/api/anthropic` prefix, plus `GET`/`HEAD`
on `/` and on the prefix. Any `POST` path ending in `/chat/completions` speaks the OpenAI Chat
Completions protocol instead (see `harness.mock_openai`), with the same recording and faults; a
scenario can answer those itself with `set_responder()` (e.g. the shapes of `harness.mock_shapes`).
Anything else is answered 404 and recorded as unexpected. A fault comes from the `x-mock-fault`
request header, else the next scripted item, else the default; `x-mock-deltas: N` sets the number
of text deltas. Every wait is bounded: stalls end when the client leaves or the mock resets/stops.
"""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import signal
import socket
import sys
import threading
import uuid
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from aiohttp import web

from harness import mock_quirks
from harness.mock_faults import (
    SPLIT_UTF8_SUFFIX,
    Fault,
    error_body,
    parse_fault,
    stream_plan,
)
from harness.mock_openai import openai_reply
from harness.mock_wire import (
    compact_json,
    default_deltas,
    ends_mid_utf8,
    foreign_thinking,
    message_json,
    reply_text,
    sse_events,
    thinking_enabled,
    thinking_signature,
    wire_variant,
)
from harness.threaded import ThreadedServer

ZAI_PREFIX = "/api/anthropic"
MESSAGE_PATHS = frozenset({"/v1/messages", "/v1/message"})
OPENAI_SUFFIX = "/chat/completions"
CLIENT_API_PREFIX = "/api/claude_code/"
FAULT_HEADER = "x-mock-fault"
DELTAS_HEADER = "x-mock-deltas"
SPLIT = parse_fault("split_utf8")  # (the repro wire's split: the writes only, no added text)
MAX_BODY = 256 * 1024 * 1024  # real requests with long histories run to tens of MB


@dataclass
class RecordedCall:
    """One request the mock received, and what it did with it.

    `sent` and `finished` are recorded just before the bytes leave (and `finished` is cleared if the
    last write fails), so whatever a client has seen is already in the record.
    """

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    json: Any
    status: int = 0
    sent: bytes = b""
    fault: str | None = None
    finished: bool = False
    client_disconnected: bool = False
    writes: int = 0
    unexpected: bool = False
    protocol: str = "anthropic"  # or "openai" for Chat Completions calls
    version: str = ""  # the request's HTTP version, "1.1"
    utf8_splits: int = 0  # writes that ended inside a multi-byte UTF-8 sequence
    hold: str = ""  # a `hold` fault: "released" (by release() while held), "expired" or "stopped"

    def to_json(self) -> dict[str, Any]:
        """The call as the control API shows it."""
        keys = ("method", "path", "query", "headers", "json", "status", "fault", "finished",
                "client_disconnected", "unexpected", "protocol", "version", "utf8_splits",
                "hold")
        return {key: getattr(self, key) for key in keys}


class _Scripted(NamedTuple):
    fault: Fault | None
    text: str | None


def _headers(request: web.BaseRequest) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in request.headers.items():
        key = key.lower()
        out[key] = f"{out[key]}, {value}" if key in out else value
    return out


def _loads(body: bytes) -> Any:
    try:
        return json.loads(body) if body else None
    except ValueError:
        return None


def _abort(request: web.BaseRequest) -> web.Response:
    if request.transport is not None:
        request.transport.abort()
    return web.Response()  # aiohttp's write to the dead transport fails quietly


def _request_headers() -> dict[str, str]:
    return {"request-id": f"req_mock_{uuid.uuid4().hex[:24]}"}


def anthropic_reply(payload: dict[str, Any], name: str, scripted_text: str | None, deltas: int | None,
                    input_tokens: int, split_utf8: bool = False) -> list[bytes] | dict[str, Any]:
    """The reply to a Messages request: its SSE events when it streams, else its JSON."""
    text = scripted_text if scripted_text is not None else reply_text(payload, name)
    if split_utf8 and text.isascii():
        text += SPLIT_UTF8_SUFFIX
    deltas = deltas if deltas is not None else default_deltas(text)
    model = str(payload.get("model") or "mock-model")
    thinking = None
    if thinking_enabled(payload):
        thought = f"Thinking about: {text[:40]}"
        thinking = (thought, thinking_signature(name, thought))
    if payload.get("stream") is True:
        return sse_events(model, text, deltas, input_tokens, thinking=thinking)
    return message_json(model, text, input_tokens, deltas, thinking=thinking)


REPLIES = {"anthropic": anthropic_reply, "openai": openai_reply}
# A scenario's reply function for Chat Completions calls: SSE chunks, a JSON body, or None (the rules)
Responder = Callable[[dict[str, Any]], "list[bytes] | dict[str, Any] | tuple[int, dict] | None"]


class MockUpstream(ThreadedServer):
    """An Anthropic-compatible upstream on 127.0.0.1 port 0 that records every call."""

    def __init__(self, name: str = "anthropic", tls: bool = False, quirks: str | None = None,
                 wire: str | None = None) -> None:
        self.name = name
        # wire="repro": every Anthropic stream without a fault is written in the harder legal
        # spellings (CR LF line ends, `: ping` comment events, its first non-ASCII character split
        # across two writes), so a relay that is not byte-exact shows (the repro job's mocks)
        if wire not in (None, "repro"):
            raise ValueError(f"unknown wire {wire!r}; expected None or 'repro'")
        self.wire = wire
        # quirks: answer as that provider would (harness.mock_quirks: refusals and reply dialect)
        self.quirks = mock_quirks.check_name(quirks)
        # tls: HTTPS (HTTP/1.1) with a certificate for 127.0.0.1 and localhost from a test CA
        # (trustme); `ca_path` is the PEM to trust (CCP_CA_BUNDLE, curl --cacert)
        self.tls = tls
        self.ca_path: str | None = None
        self._ssl = None
        self._thread_name = f"mock-upstream-{name}"
        self._cond = threading.Condition()
        self._calls: list[RecordedCall] = []
        self.probes = 0  # GET/HEAD reachability probes on / and the prefix (not in `calls`)
        self.client_api: list[str] = []  # GET /api/claude_code/… paths (not in `calls`)
        self._scripts: deque[_Scripted] = deque()
        self._default: Fault | None = None
        self._responder: Responder | None = None  # see set_responder()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None
        self._wake = asyncio.Event()
        # the `hold` faults waiting for release(), each with how it ended once it did
        self._holds: dict[asyncio.Event, str] = {}
        self._stop_requested = asyncio.Event()
        self._stopping = False

    # lifecycle
    @property
    def base_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def stop(self) -> None:
        super().stop()
        if self._ssl is not None:  # a restarted TLS mock gets a new CA (and `ca_path`)
            self._ca_dir.cleanup()
            self._ssl = self.ca_path = None

    def _ssl_context(self):
        if not self.tls:
            return None
        if self._ssl is None:
            import ssl
            import tempfile

            import trustme
            ca = trustme.CA()
            self._ca_dir = tempfile.TemporaryDirectory(prefix=f"ccp-mock-{self.name}-ca-")
            self.ca_path = f"{self._ca_dir.name}/ca.pem"
            ca.cert_pem.write_to_path(self.ca_path)
            self._ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ca.issue_cert("127.0.0.1", "localhost").configure_cert(self._ssl)
        return self._ssl

    @property
    def zai_base_url(self) -> str:
        return self.base_url + ZAI_PREFIX

    async def _open(self, host: str = "127.0.0.1", port: int = 0) -> int:
        self._loop = asyncio.get_running_loop()
        self._wake, self._stopping = asyncio.Event(), False
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        # handler_cancellation: a client that goes away cancels its handler, ending stalls.
        runner = web.AppRunner(app, access_log=None, handler_cancellation=True,
                               shutdown_timeout=1.0)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port, ssl_context=self._ssl_context()).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._port = runner.addresses[0][1]
        return self._port

    async def _close(self) -> None:
        self._stopping = True
        self._wake_stalls()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _wake_stalls(self) -> None:
        self._wake.set()
        self._wake = asyncio.Event()
        self._release_holds("stopped")  # (a reset or a stop)

    def _release_holds(self, outcome: str = "released") -> None:
        for gate, was in self._holds.items():
            self._holds[gate] = was or outcome
            gate.set()

    def release(self) -> None:
        """Let every stream held by a `hold` fault go on (its client has seen what came before)."""
        try:
            self._loop.call_soon_threadsafe(self._release_holds)
        except (AttributeError, RuntimeError):  # not started, or already stopped: nothing is held
            pass

    async def _held(self, call: RecordedCall, gate: asyncio.Event, seconds: float) -> None:
        """Wait for release() (or a reset or stop) up to `seconds`; the call records which came."""
        try:
            async with asyncio.timeout(seconds):
                await gate.wait()
        except TimeoutError:
            self._holds[gate] = self._holds.get(gate) or "expired"
        finally:
            outcome = self._holds.pop(gate, "") or "stopped"
        self._update(call, hold=outcome)

    # state, shared with the test thread
    @property
    def calls(self) -> list[RecordedCall]:
        """A snapshot of every recorded call, oldest first."""
        with self._cond:
            return [dataclasses.replace(call) for call in self._calls]

    def reset(self) -> None:
        """Forget calls, scripts and the default fault; end any stall in progress."""
        with self._cond:
            self._calls.clear()
            self.client_api.clear()
            self._scripts.clear()
            self._default = None
            self._responder = None
            self._cond.notify_all()
        try:
            self._loop.call_soon_threadsafe(self._wake_stalls)
        except (AttributeError, RuntimeError):  # not started, or already stopped: nothing stalls
            pass

    def script(self, fault: str | None = None, *, text: str | None = None, times: int = 1) -> None:
        """Queue `times` replies (FIFO, one per messages call) with a fault and/or reply text."""
        if times < 1:
            raise ValueError(f"times must be >= 1, got {times}")
        item = _Scripted(parse_fault(fault) if fault else None, text)
        with self._cond:
            self._scripts.extend([item] * times)

    def set_default(self, spec: str | None) -> None:
        """The fault used when neither the header nor the script names one (None clears it)."""
        fault = parse_fault(spec) if spec else None
        with self._cond:
            self._default = fault

    def set_responder(self, responder: Responder | None) -> None:
        """Answer each Chat Completions call with `responder(payload)` (called on the mock's loop):
        a list of SSE chunks (one write each), a JSON body (200), `(status, JSON body)`, or None for
        the default rules.
        Faults still apply first; a scripted text wins over it. `reset()` clears it."""
        with self._cond:
            self._responder = responder

    def wait_until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> list[RecordedCall]:
        """Wait until `predicate()` holds (a LookupError counts as not yet); returns the calls.

        Raises AssertionError after `timeout` seconds, listing the calls seen so far.
        """
        def check() -> bool:
            try:
                return bool(predicate())
            except LookupError:
                return False

        with self._cond:
            if self._cond.wait_for(check, timeout):
                return self.calls
            seen = [(c.method, c.path, c.status) for c in self._calls]
        raise AssertionError(f"mock {self.name}: condition not met within {timeout}s; calls: {seen}")

    def wait_for_calls(self, n: int, timeout: float = 5.0) -> list[RecordedCall]:
        """Wait until at least `n` calls were recorded; returns them."""
        return self.wait_until(lambda: len(self._calls) >= n, timeout)

    def assert_no_unexpected(self) -> None:
        """Raise AssertionError listing every call that matched no route."""
        unexpected = [f"{c.method} {c.path}" for c in self.calls if c.unexpected]
        if unexpected:
            raise AssertionError(f"unexpected calls to mock {self.name}: {', '.join(unexpected)}")

    def _record(self, call: RecordedCall) -> None:
        with self._cond:
            self._calls.append(call)
            self._cond.notify_all()

    def _update(self, call: RecordedCall, **changes: Any) -> None:
        with self._cond:
            for key, value in changes.items():
                setattr(call, key, value)
            self._cond.notify_all()

    def _pick(self, request: web.BaseRequest) -> tuple[Fault | None, str | None]:
        spec = request.headers.get(FAULT_HEADER)
        header_fault = parse_fault(spec) if spec else None
        with self._cond:
            item = self._scripts.popleft() if self._scripts else _Scripted(None, None)
            return header_fault or item.fault or self._default, item.text

    # handlers
    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        if request.path.startswith("/_mock/"):
            return await self._control(request)
        if request.method == "HEAD" or (request.path in ("/", ZAI_PREFIX, ZAI_PREFIX + "/")
                                         and request.method == "GET"):
            # reachability probes (the shim's /readyz) are counted, not recorded as model calls
            with self._cond:
                self.probes += 1
            return web.json_response({"ok": True, "name": self.name})
        if request.method == "GET" and request.path.startswith(CLIENT_API_PREFIX):
            # Claude Code's own settings calls (HTTPS_PROXY mode sends them to the anthropic lane):
            # listed in `client_api`, answered as an account without managed settings would be
            with self._cond:
                self.client_api.append(request.path)
            return web.json_response(error_body(404, f"mock {self.name}: no managed settings"),
                                     status=404)
        body = await request.read()
        call = RecordedCall(request.method, request.path, dict(request.query), _headers(request),
                            body, _loads(body),
                            version=f"{request.version.major}.{request.version.minor}")
        self._record(call)
        try:
            return await self._route(request, call)
        except asyncio.CancelledError:
            self._update(call, client_disconnected=True, finished=False)
            raise
        except ConnectionError:
            self._update(call, client_disconnected=True, finished=False)
            return web.Response()

    async def _route(self, request: web.Request, call: RecordedCall) -> web.StreamResponse:
        path = request.path
        inner = path[len(ZAI_PREFIX):] if path.startswith(ZAI_PREFIX + "/") else path
        if request.method == "POST" and inner in MESSAGE_PATHS:
            return await self._messages(request, call, "anthropic")
        if request.method == "POST" and inner == "/v1/messages/count_tokens":
            # a deterministic count, distinct from the shim's local estimate
            return await self._respond(request, call, 200, {"input_tokens": 1000 + len(call.body)})
        if request.method == "POST" and path.endswith(OPENAI_SUFFIX):
            self._update(call, protocol="openai")
            return await self._messages(request, call, "openai")
        self._update(call, unexpected=True)
        message = f"mock {self.name}: no route for {request.method} {path}"
        return await self._respond(request, call, 404, error_body(404, message))

    async def _respond(self, request: web.Request, call: RecordedCall, status: int,
                       payload: dict[str, Any], headers: dict[str, str] | None = None,
                       gzip: bool = False) -> web.StreamResponse:
        body = compact_json(payload).encode()
        extra = dict(headers or {})
        if gzip:  # (recorded as sent: the encoded bytes, what the wire carried)
            body = _gzip(body)
            extra["content-encoding"] = "gzip"
        resp = web.Response(status=status, body=body, content_type="application/json",
                            headers={**_request_headers(), **extra})
        # Recorded before the bytes leave, so a client that saw the reply never sees a stale record.
        self._update(call, status=status, sent=body, finished=True)
        await resp.prepare(request)
        await resp.write_eof()
        return resp

    async def _stall(self, seconds: float) -> bool:
        """Stay silent up to `seconds`; False when a reset or stop cut it short."""
        wake = self._wake
        if self._stopping:
            return False
        try:
            async with asyncio.timeout(seconds):
                await wake.wait()
        except TimeoutError:
            return True
        return False

    async def _messages(self, request: web.Request, call: RecordedCall,
                        protocol: str) -> web.StreamResponse:
        def error(status: int, message: str = "mock fault") -> dict[str, Any]:
            return error_body(status, message, protocol)

        try:
            fault, scripted_text = self._pick(request)
        except ValueError as exc:
            return await self._respond(request, call, 400, error(400, f"bad {FAULT_HEADER}: {exc}"))
        kind = fault.kind if fault else None
        self._update(call, fault=fault.spec() if fault else None)
        if fault and kind == "status":
            extra = {"retry-after": "1"} if fault.status == 429 else {}
            return await self._respond(request, call, fault.status, error(fault.status), extra)
        if kind == "reset_before_headers":
            return _abort(request)
        payload = call.json
        if not isinstance(payload, dict):
            return await self._respond(request, call, 400, error(400, "body must be a JSON object"))
        try:
            return await self._answer(request, call, protocol, payload, fault, scripted_text)
        except (TypeError, AttributeError, KeyError, IndexError, ValueError) as exc:
            # a body of the right JSON but the wrong shape (a list where a string belongs, …): what
            # a real provider answers it, not a crash of the mock
            message = f"mock {self.name}: malformed request ({type(exc).__name__}: {exc})"
            return await self._respond(request, call, 400, error(400, message[:300]))

    async def _answer(self, request: web.Request, call: RecordedCall, protocol: str,
                      payload: dict[str, Any], fault: Fault | None,
                      scripted_text: str | None) -> web.StreamResponse:
        def error(status: int, message: str = "mock fault") -> dict[str, Any]:
            return error_body(status, message, protocol)

        kind = fault.kind if fault else None
        stream = payload.get("stream") is True
        rejected = foreign_thinking(payload, self.name) if protocol == "anthropic" else None
        if rejected:  # what the real services answer to a thinking block someone else signed
            return await self._respond(request, call, 400, error(400, rejected))
        refused = self.quirks and mock_quirks.rejection(self.quirks, protocol, payload, call.headers,
                                                        max(1, len(call.body) // 4))
        if refused:  # what that provider answers a request it does not take
            return await self._respond(request, call, *refused)
        if (kind == "stall_before_headers" or (kind == "stall" and not stream)) \
                and not await self._stall(fault.seconds):
            return _abort(request)
        if kind == "json_trickle":
            return await self._trickle(request, call, fault.seconds)
        raw = request.headers.get(DELTAS_HEADER)
        if raw is not None and (not raw.isdigit() or int(raw) > 100_000):
            return await self._respond(request, call, 400, error(400, f"bad {DELTAS_HEADER}: {raw!r}"))
        responder = self._responder if protocol == "openai" and scripted_text is None else None
        reply = responder(payload) if responder is not None else None
        if reply is None:
            reply = REPLIES[protocol](payload, self.name, scripted_text, None if raw is None else int(raw),
                                      max(1, len(call.body) // 4), kind == "split_utf8")
            if self.quirks:
                reply = mock_quirks.reshape(self.quirks, protocol, reply)
        if isinstance(reply, tuple):  # (status, body): an answer other than a 200
            return await self._respond(request, call, *reply)
        if isinstance(reply, list):
            return await self._stream(request, call, fault, reply, protocol)
        if kind == "reset_mid_stream":  # headers and half the body, then the connection drops
            body = compact_json(reply).encode()
            resp = web.StreamResponse(headers=_request_headers())
            resp.content_type, resp.content_length = "application/json", len(body)
            self._update(call, status=200, sent=body[:len(body) // 2])
            await resp.prepare(request)
            await resp.write(body[:len(body) // 2])
            return _abort(request)
        if kind == "gzip":
            return await self._respond(request, call, 200, reply, gzip=True)
        return await self._respond(request, call, 200, reply)

    async def _trickle(self, request: web.Request, call: RecordedCall,
                       seconds: float) -> web.StreamResponse:
        """A JSON answer that never ends: a byte every 50 ms, until `seconds`, a reset or the client
        leaving (the connection is then dropped: the body was never whole)."""
        resp = web.StreamResponse(headers=_request_headers())
        resp.content_type = "application/json"
        self._update(call, status=200)
        await resp.prepare(request)
        await resp.write(b"{")
        deadline = asyncio.get_running_loop().time() + seconds
        while asyncio.get_running_loop().time() < deadline and not self._stopping:
            try:
                async with asyncio.timeout(0.05):
                    await self._wake.wait()
                return _abort(request)  # a reset or stop: end now
            except TimeoutError:
                pass
            await resp.write(b" ")
            self._update(call, sent=call.sent + b" ", writes=call.writes + 1)
        return _abort(request)

    async def _stream(self, request: web.Request, call: RecordedCall, fault: Fault | None,
                      events: list[bytes], protocol: str = "anthropic") -> web.StreamResponse:
        kind = fault.kind if fault else None
        sock = request.transport.get_extra_info("socket") if request.transport else None
        if sock is not None:  # each event leaves as its own TCP segment
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        extra = {"content-encoding": "gzip"} if kind == "gzip" else {}
        resp = web.StreamResponse(headers={**_request_headers(), "cache-control": "no-cache", **extra})
        resp.content_type = "text/event-stream"
        self._update(call, status=200)
        await resp.prepare(request)
        squeeze = zlib.compressobj(wbits=31) if kind == "gzip" else None
        gate = None
        if kind == "hold":  # registered before the first write: a release that comes early counts
            gate = asyncio.Event()
            self._holds[gate] = ""
        plan = stream_plan(events, fault, protocol)
        if self.wire == "repro" and fault is None and protocol == "anthropic":
            plan = stream_plan(wire_variant(events, crlf=True, comments=True), SPLIT, protocol)
        for index, (pause, chunk) in enumerate(plan):
            if squeeze is not None:  # each event flushed as it goes, as a compressing server streams
                chunk = squeeze.compress(chunk) + squeeze.flush(zlib.Z_SYNC_FLUSH)
            if kind == "reset_mid_stream" and index == fault.after:
                return _abort(request)
            if kind == "stall" and index == 1 and not await self._stall(fault.seconds):
                return _abort(request)
            if gate is not None and index == fault.after:
                await self._held(call, gate, fault.seconds)
            if pause:
                await asyncio.sleep(pause)
            self._update(call, sent=call.sent + chunk, writes=call.writes + 1,
                         utf8_splits=call.utf8_splits + ends_mid_utf8(chunk))
            await resp.write(chunk)
        if kind == "reset_mid_stream":
            return _abort(request)
        if squeeze is not None:
            tail = squeeze.flush()
            self._update(call, sent=call.sent + tail)
            await resp.write(tail)
        self._update(call, finished=True)
        await resp.write_eof()
        return resp

    async def _control(self, request: web.Request) -> web.StreamResponse:
        route = (request.method, request.path)
        if route == ("GET", "/_mock/calls"):
            return web.json_response([call.to_json() for call in self.calls])
        if route == ("POST", "/_mock/reset"):
            self.reset()
            return web.json_response({"ok": True})
        if route == ("POST", "/_mock/script"):
            try:
                data = await request.json()
                if not isinstance(data, dict):
                    raise ValueError("body must be a JSON object")
                self.script(data.get("fault"), text=data.get("text"), times=int(data.get("times", 1)))
            except (ValueError, TypeError) as exc:
                return web.json_response(error_body(400, str(exc)), status=400)
            return web.json_response({"ok": True})
        return web.json_response(error_body(404, f"no control route {request.method} {request.path}"),
                                 status=404)



def _gzip(data: bytes) -> bytes:
    squeeze = zlib.compressobj(wbits=31)
    return squeeze.compress(data) + squeeze.flush()


async def _serve(host: str, port: int, name: str) -> int:
    mock = MockUpstream(name)
    bound = await mock._open(host, port)
    try:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        url = f"http://{f'[{host}]' if ':' in host else host}:{bound}"
        print(json.dumps({"event": "listening", "name": name, "host": host, "port": bound,
                          "url": url, "zai_url": url + ZAI_PREFIX}), flush=True)
        await stop.wait()
    finally:
        await mock._close()
    return 0


def main(argv: list[str] | None = None) -> int:
    """`ccp mock-upstream`: serve in the foreground until SIGINT/SIGTERM."""
    parser = argparse.ArgumentParser(prog="ccp mock-upstream",
                                     description="Anthropic-compatible mock upstream.")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s)")
    parser.add_argument("--port", type=int, default=0, help="port (default 0: the OS chooses, announced "
                        "on stdout)")
    parser.add_argument("--name", default="anthropic", help="the provider it plays: anthropic (zai "
                        "answers under /api/anthropic too), zai, glm, … (default %(default)s)")
    args = parser.parse_args(argv)
    try:
        return asyncio.run(_serve(args.host, args.port, args.name))
    except OSError as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
