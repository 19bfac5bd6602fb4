"""The fast mock's TLS listener: a throwaway CA, ALPN `h2` and `http/1.1`, and HTTP/2 when h2 is chosen.

`server_context(cert, key)` offers h2 first, so a client offering both gets HTTP/2 and a client
offering only `http/1.1` (or nothing) gets HTTP/1.1. asyncio hands a TLS connection to its protocol
once the handshake is done: `TlsConnection` counts the handshake there, reads the chosen protocol and
passes the connection on to the fast mock's HTTP/1.1 protocol or to `H2Mock`.

`H2Mock` is the `h2` library's state machine on an asyncio protocol: a request's answer comes from
the same `MockState.reply()` as over HTTP/1.1 (the same bytes, the same counters, kind `h2`); its
body is queued per stream and sent as the peer's flow-control windows allow; request bodies are
acknowledged as they arrive. The windows it advertises (`H2_WINDOW`, `--h2-window`) default to 1 MiB
a stream and 16 MiB the connection, as large servers raise theirs, so the bench's 64–120 KB bodies do
not wait on flow control. With the RFC's 65,535 bytes for both (`--h2-window 65535`) httpcore 1.0.9,
the shim's HTTP/2 client, stalls now and then on two concurrent bodies larger than the connection's
window: the server has opened the windows, the client's h2 state knows it, and the rest of one body
is never sent (docs/performance.md, the https path).
"""
from __future__ import annotations

import asyncio
import ssl
from typing import TYPE_CHECKING

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings

if TYPE_CHECKING:  # (fast_mock imports this module to serve TLS; no import back at run time)
    from harness.bench.fast_mock import MockState, Reply

ALPN = ["h2", "http/1.1"]
H2_WINDOW = 1 << 20  # bytes a stream may send before a WINDOW_UPDATE (the connection: 16×)
RFC_WINDOW = 65535  # HTTP/2's initial window, a stream's and the connection's


def server_context(cert_path: str, key_path: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    context.set_alpn_protocols(ALPN)
    return context


class TlsConnection(asyncio.Protocol):
    """One TLS connection, handed on to HTTP/1.1 or HTTP/2 by what ALPN chose."""

    def __init__(self, state: MockState, h2_window: int = H2_WINDOW) -> None:
        self.state = state
        self.h2_window = h2_window
        self.inner: asyncio.Protocol | None = None

    def connection_made(self, transport) -> None:
        self.state.handshakes += 1  # asyncio calls this once the handshake completed
        ssl_object = transport.get_extra_info("ssl_object")
        alpn = ssl_object.selected_alpn_protocol() if ssl_object is not None else None
        self.inner = (H2Mock(self.state, self.h2_window) if alpn == "h2"
                      else self.state.http1("h1-tls"))
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self.inner.data_received(data)

    def eof_received(self):
        return self.inner.eof_received() if self.inner is not None else None

    def connection_lost(self, exc) -> None:
        if self.inner is not None:
            self.inner.connection_lost(exc)


class H2Mock(asyncio.Protocol):
    """One HTTP/2 connection: many streams, each answered when its request ended."""

    def __init__(self, state: MockState, window: int = H2_WINDOW) -> None:
        self.state = state
        self.window = window
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding=None))
        self.transport: asyncio.Transport | None = None
        self.requests: dict[int, tuple[dict, bytearray]] = {}
        self.pending: dict[int, list] = {}  # stream id → [bytes still to send, end when sent]
        self.drips: dict[int, asyncio.Task] = {}

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.conn.local_settings = h2.settings.Settings(client=False, initial_values={
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 100,  # (h2's default)
            h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: self.conn.DEFAULT_MAX_HEADER_LIST_SIZE,
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: self.window})
        self.conn.initiate_connection()
        if self.window > RFC_WINDOW:  # the connection's: 16× (the RFC's default stays as it is)
            self.conn.increment_flow_control_window(16 * self.window - RFC_WINDOW)
        transport.write(self.conn.data_to_send())

    def connection_lost(self, exc) -> None:
        for task in self.drips.values():
            task.cancel()
        self.drips.clear()

    def data_received(self, data: bytes) -> None:
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError:
            self._send()
            self.transport.close()
            return
        for ev in events:
            if isinstance(ev, h2.events.RequestReceived):
                self.requests[ev.stream_id] = (dict(ev.headers), bytearray())
            elif isinstance(ev, h2.events.DataReceived):
                self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                if ev.stream_id in self.requests:
                    self.requests[ev.stream_id][1].extend(ev.data)
            elif isinstance(ev, h2.events.StreamEnded):
                self._answer(ev.stream_id)
            elif isinstance(ev, h2.events.WindowUpdated):
                for sid in list(self.pending):
                    self._flush(sid)
            elif isinstance(ev, h2.events.StreamReset):
                self._forget(ev.stream_id)
            elif isinstance(ev, h2.events.ConnectionTerminated):
                self._send()
                self.transport.close()
                return
        self._send()

    def _send(self) -> None:
        data = self.conn.data_to_send()
        if data and not self.transport.is_closing():
            self.transport.write(data)

    def _forget(self, sid: int) -> None:
        self.requests.pop(sid, None)
        self.pending.pop(sid, None)
        task = self.drips.pop(sid, None)
        if task is not None:
            task.cancel()

    def _answer(self, sid: int) -> None:
        headers, body = self.requests.pop(sid, ({}, bytearray()))
        r: Reply = self.state.reply(headers.get(b":method", b""),
                                    headers.get(b":path", b"").split(b"?", 1)[0],
                                    headers, bytes(body), "h2")
        head = [(b":status", str(r.status).encode()), (b"content-type", r.ctype),
                (b"request-id", b"req_bench")]
        if not r.stream:
            head.append((b"content-length", str(len(r.parts[0])).encode()))
        self.conn.send_headers(sid, head)
        if not r.stream or r.delay <= 0:
            self._queue(sid, b"".join(r.parts), True)
        else:
            self._queue(sid, r.parts[0], False)
            self.drips[sid] = asyncio.get_running_loop().create_task(
                self._drip(sid, r.parts[1:], r.delay))

    async def _drip(self, sid: int, parts: list[bytes], delay: float) -> None:
        for i, part in enumerate(parts):
            await asyncio.sleep(delay)
            if self.transport.is_closing():
                return
            self._queue(sid, part, i == len(parts) - 1)
            self._send()
        self.drips.pop(sid, None)

    def _queue(self, sid: int, data: bytes, end: bool) -> None:
        entry = self.pending.get(sid)
        if entry is None:
            self.pending[sid] = [bytearray(data), end]
        else:
            entry[0] += data
            entry[1] = end
        self._flush(sid)

    def _flush(self, sid: int) -> None:
        """Send what the windows allow of stream `sid`'s queue (and end it when all is sent)."""
        entry = self.pending.get(sid)
        if entry is None:
            return
        buf, end = entry
        try:
            while buf:
                n = min(self.conn.local_flow_control_window(sid), self.conn.max_outbound_frame_size,
                        len(buf))
                if n <= 0:
                    return
                self.conn.send_data(sid, bytes(buf[:n]))
                del buf[:n]
            if end:
                self.conn.end_stream(sid)
                del self.pending[sid]
        except h2.exceptions.StreamClosedError:
            self._forget(sid)
