"""A lean mock upstream for the benchmark: the same wire shapes as `harness.mock_upstream`, less cost.

The test mock (`MockUpstream`) records every call with its headers and body, which is what scenarios
need and what makes it the bottleneck at 32 clients. This one is a bare asyncio protocol (uvloop when
installed) that parses just enough HTTP/1.1 to answer, and counts calls:

- `POST …/v1/messages` (any prefix): an Anthropic Messages reply, JSON or SSE (`"stream": true`);
- `POST …/chat/completions`: an OpenAI Chat Completions reply, JSON or SSE ending in `[DONE]`;
- `GET /_bench/count`: `{"calls": N, "handshakes": H, "tls_calls": T, "h2_calls": M, "by_kind": …}`
  (model calls answered so far, TLS handshakes, calls over TLS and over HTTP/2), for the smoke check
  and the bench's per-scenario counts;
- `GET|HEAD /`: 200, so readiness probes see an upstream.

`x-mock-deltas: N` sets the number of text deltas of a stream; `x-mock-delay-ms: D` waits D ms before
each delta (the hold test's long-lived streams). Proxies that drop unknown headers get the same from
`POST /_bench/config {"deltas": N, "delay_ms": D}`, the defaults for every later request. Replies
are built once per (protocol, model, stream, deltas) by the builders of `harness.mock_wire` /
`harness.mock_openai_wire` and then reused.

With `--tls-dir DIR` a second listener serves TLS with a throwaway CA written to DIR, ALPN offering
h2 and http/1.1, HTTP/2 when h2 is chosen (`harness.bench.fast_mock_tls`), the same replies and
counters. `python -m harness.bench.fast_mock --port 0 [--tls-dir DIR]` announces
`{"event": "listening", "port": P[, "tls_port": Q, "ca": PATH]}` on stdout.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from collections import Counter
from typing import NamedTuple

from harness.bench.procs import run_fast
from harness.mock_openai_wire import chat_chunks, chat_completion_json
from harness.mock_wire import message_json, sse_events

try:
    import orjson
    _loads = orjson.loads
except ImportError:  # the bench environment installs it; the mock still works without
    _loads = json.loads

TEXT = "Hello from the bench mock"
INPUT_TOKENS = 12
_REASONS = {200: b"OK", 404: b"Not Found", 400: b"Bad Request"}


def _head(status: int, ctype: bytes, length: int | None) -> bytes:
    framing = b"transfer-encoding: chunked" if length is None else b"content-length: %d" % length
    return (b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\n%s\r\nrequest-id: req_bench\r\n\r\n"
            % (status, _REASONS.get(status, b"X"), ctype, framing))


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def reply_parts(openai: bool, model: str, stream: bool, deltas: int) -> list[bytes]:
    """The reply body: one element for JSON, one per event (or chunk) for a stream."""
    if openai:
        if stream:
            return chat_chunks(model, TEXT, deltas, INPUT_TOKENS, include_usage=True)
        return [json.dumps(chat_completion_json(model, TEXT, INPUT_TOKENS, 5)).encode()]
    if stream:
        return sse_events(model, TEXT, deltas, INPUT_TOKENS)
    return [json.dumps(message_json(model, TEXT, INPUT_TOKENS, 5)).encode()]


class Reply(NamedTuple):
    status: int
    ctype: bytes
    parts: list[bytes]  # the whole body (JSON), or one element per event (stream)
    stream: bool = False
    delay: float = 0.0  # seconds before each event after the first


_EMPTY_JSON = Reply(200, b"application/json", [b"{}"])


class MockState:
    """What every connection shares: the counters, the stream defaults, the cached replies.

    `calls` counts model calls on either listener; `by_kind` splits them by wire (`h1` cleartext,
    `h1-tls`, `h2`); `handshakes` counts completed TLS handshakes (= TLS connections)."""

    def __init__(self) -> None:
        self.calls = 0
        self.by_kind: Counter = Counter()
        self.handshakes = 0
        self.deltas = 8
        self.delay_ms = 0
        self._cache: dict[tuple, list[bytes]] = {}

    def http1(self, kind: str) -> MockProtocol:
        """A new HTTP/1.1 connection's protocol sharing this state (the TLS listener's, when ALPN
        chose http/1.1: harness.bench.fast_mock_tls)."""
        return MockProtocol(self, kind)

    def parts(self, openai: bool, model: str, stream: bool, deltas: int) -> list[bytes]:
        key = (openai, model, stream, deltas)
        parts = self._cache.get(key)
        if parts is None:
            parts = self._cache[key] = reply_parts(openai, model, stream, deltas)
        return parts

    def counts(self) -> dict:
        return {"calls": self.calls, "handshakes": self.handshakes,
                "tls_calls": self.by_kind["h1-tls"] + self.by_kind["h2"],
                "h2_calls": self.by_kind["h2"], "by_kind": dict(self.by_kind)}

    def reply(self, method: bytes, path: bytes, headers: dict, body: bytes, kind: str) -> Reply:
        """The answer to one request (`headers`: lower-case bytes names → bytes values)."""
        if method == b"POST" and (path.endswith(b"/messages") or path.endswith(b"/chat/completions")):
            self.calls += 1
            self.by_kind[kind] += 1
            try:
                payload = _loads(body)
                model, stream = str(payload.get("model") or "mock"), payload.get("stream") is True
            except (ValueError, AttributeError):
                return Reply(400, b"application/json", [b"{}"])
            openai = path.endswith(b"/chat/completions")
            deltas = int(headers.get(b"x-mock-deltas", self.deltas))
            parts = self.parts(openai, model, stream, deltas)
            if not stream:
                return Reply(200, b"application/json", parts)
            delay = int(headers.get(b"x-mock-delay-ms", self.delay_ms)) / 1000.0
            return Reply(200, b"text/event-stream", parts, True, max(delay, 0.0))
        if path == b"/_bench/config":
            conf = json.loads(body or b"{}")
            self.deltas = int(conf.get("deltas", self.deltas))
            self.delay_ms = int(conf.get("delay_ms", self.delay_ms))
            return _EMPTY_JSON
        if path == b"/_bench/count":
            return Reply(200, b"application/json", [json.dumps(self.counts()).encode()])
        if method in (b"GET", b"HEAD") and path == b"/":
            return Reply(200, b"text/plain", [b""])
        return Reply(404, b"application/json", [b"{}"])


class MockProtocol(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection; requests are answered in order."""

    def __init__(self, state: MockState, kind: str = "h1") -> None:
        self.state = state
        self.kind = kind
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.busy: asyncio.Task | None = None  # a delayed stream being written

    def connection_made(self, transport) -> None:
        self.transport = transport

    def connection_lost(self, exc) -> None:
        if self.busy is not None:
            self.busy.cancel()

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while self.busy is None:
            parsed = self._next_request()
            if parsed is None:
                return
            self._answer(*parsed)

    def _next_request(self):
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return None
        lines = bytes(self.buf[:end]).split(b"\r\n")
        method, target, _ = lines[0].split(b" ", 2)
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        start = end + 4
        if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
            body, used = _dechunk(self.buf, start)
            if body is None:
                return None
            del self.buf[:used]
        else:
            n = int(headers.get(b"content-length", b"0"))
            if len(self.buf) < start + n:
                return None
            body = bytes(self.buf[start:start + n])
            del self.buf[:start + n]
        return method, target.split(b"?", 1)[0], headers, body

    def _answer(self, method: bytes, path: bytes, headers: dict, body: bytes) -> None:
        t = self.transport
        r = self.state.reply(method, path, headers, body, self.kind)
        if not r.stream:
            t.write(_head(r.status, r.ctype, len(r.parts[0])) + r.parts[0])
        elif r.delay <= 0:
            t.write(_head(r.status, r.ctype, None) + _chunk(b"".join(r.parts)) + b"0\r\n\r\n")
        else:
            self.busy = asyncio.get_running_loop().create_task(self._drip(r.parts, r.delay))

    async def _drip(self, parts: list[bytes], delay: float) -> None:
        t = self.transport
        t.write(_head(200, b"text/event-stream", None) + _chunk(parts[0]))
        for part in parts[1:]:
            await asyncio.sleep(delay)
            if t.is_closing():
                return
            t.write(_chunk(part))
        t.write(b"0\r\n\r\n")
        self.busy = None
        if self.buf:
            self.data_received(b"")


def _dechunk(buf: bytearray, pos: int) -> tuple[bytes | None, int]:
    """A chunked request body starting at `pos`: (body, bytes used) or (None, 0) if incomplete."""
    out = bytearray()
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None, 0
        size = int(bytes(buf[pos:eol]).split(b";")[0], 16)
        if len(buf) < eol + 2 + size + 2:
            return None, 0
        out += buf[eol + 2:eol + 2 + size]
        pos = eol + 2 + size + 2
        if size == 0:
            return bytes(out), pos


async def serve(host: str, port: int, tls_dir: str | None = None, h2_window: int | None = None) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    state = MockState()
    server = await loop.create_server(lambda: MockProtocol(state), host, port, backlog=4096)
    announce = {"event": "listening", "port": server.sockets[0].getsockname()[1], "pid": os.getpid()}
    servers = [server]
    if tls_dir is not None:
        from pathlib import Path

        from harness.bench.fast_mock_tls import H2_WINDOW, TlsConnection, server_context
        from harness.tls_mock import throwaway_certs
        ca, cert, key = throwaway_certs(Path(tls_dir))
        window = h2_window or H2_WINDOW
        tls = await loop.create_server(lambda: TlsConnection(state, window), host, 0, backlog=4096,
                                       ssl=server_context(cert, key))
        servers.append(tls)
        announce.update(tls_port=tls.sockets[0].getsockname()[1], ca=ca)
    print(json.dumps(announce), flush=True)
    await stop.wait()
    for s in servers:
        s.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.bench.fast_mock")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--tls-dir", default=None,
                        help="also serve TLS (h2 and http/1.1 by ALPN) on a second port, with a "
                             "throwaway CA written here (announced as tls_port and ca)")
    parser.add_argument("--h2-window", type=int, default=None,
                        help="HTTP/2 stream window it advertises, bytes (the connection's: 16×); "
                             "default 1 MiB; 65535: the RFC's defaults for both")
    args = parser.parse_args(argv)
    run_fast(serve(args.host, args.port, args.tls_dir, args.h2_window))
    return 0


if __name__ == "__main__":
    sys.exit(main())
