"""An HTTP/2-capable TLS server for any ASGI app, on 127.0.0.1 and a free port, in its own thread.

    with TlsMock(app) as mock:          # or mock = TlsMock(app).start(); ...; mock.stop()
        mock.base_url                   # https://127.0.0.1:<port>
        mock.ca_path                    # the PEM to trust (CCP_CA_BUNDLE=<ca_path>)
        mock.calls                      # one MockCall per request: http_version, client, path

Hypercorn offers h2 and http/1.1 by ALPN; the certificate (trustme) names 127.0.0.1 and localhost.
The listening socket is bound and listening before `start()` returns, so a client may connect at once.
`MockCall.client` is the peer's (host, port): distinct values count the connections.
"""
from __future__ import annotations

import asyncio
import json
import socket
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import trustme
from hypercorn.asyncio import serve
from hypercorn.config import Config, Sockets

from harness.mock_wire import message_json, sse_events


def write_certs(directory: Path) -> tuple[str, str, str]:
    """A throwaway CA and a leaf for 127.0.0.1 and localhost, written to `directory` as PEM files:
    (ca.pem, cert.pem with the chain, key.pem). Trust the first (CCP_CA_BUNDLE); serve the others."""
    ca = trustme.CA()
    ca_path, cert_path, key_path = (str(directory / n) for n in ("ca.pem", "cert.pem", "key.pem"))
    ca.cert_pem.write_to_path(ca_path)
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    leaf.cert_chain_pems[0].write_to_path(cert_path)
    for extra in leaf.cert_chain_pems[1:]:
        extra.write_to_path(cert_path, append=True)
    leaf.private_key_pem.write_to_path(key_path)
    return ca_path, cert_path, key_path


class MockCall(NamedTuple):
    http_version: str  # "2" or "1.1"
    client: tuple[str, int]
    method: str
    path: str


class _Config(Config):
    """Serves on a socket we bound ourselves (hypercorn cannot report the port of a :0 bind)."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
        self._sock = sock

    def create_sockets(self) -> Sockets:
        return Sockets([self._sock], [], [])


class TlsMock:
    """Serve `app` over TLS (h2 + http/1.1) from a background thread."""

    def __init__(self, app: Callable[..., Any]) -> None:
        self._app = app
        self.calls: list[MockCall] = []
        self._dir = tempfile.TemporaryDirectory(prefix="ccp-tls-mock-")
        self.ca_path = str(Path(self._dir.name) / "ca.pem")
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def connections(self) -> int:
        """Distinct client connections seen so far."""
        return len({call.client for call in self.calls})

    def start(self) -> TlsMock:
        self.ca_path, cert_path, key_path = write_certs(Path(self._dir.name))
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(128)
        self._sock.setblocking(False)
        self.port = self._sock.getsockname()[1]
        config = _Config(self._sock)
        config.certfile, config.keyfile = cert_path, key_path
        config.errorlog = None  # quiet: the tests assert on calls, not on logs
        config.graceful_timeout = 1.0
        self._thread = threading.Thread(target=self._run, args=(config,), name="tls-mock",
                                        daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the TLS mock's event loop did not start within 10 s")
        return self

    def _run(self, config: Config) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stopping = asyncio.Event()
            self._ready.set()
            await serve(self._recording, config, shutdown_trigger=self._stopping.wait)

        asyncio.run(main())

    async def _recording(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            client = tuple(scope.get("client") or ("", 0))
            self.calls.append(MockCall(scope.get("http_version", ""), client,  # type: ignore[arg-type]
                                       scope["method"], scope["path"]))
        elif scope["type"] == "lifespan":  # the apps here have no startup work
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        await self._app(scope, receive, send)

    def stop(self) -> None:
        if self._thread is not None and self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
            self._thread.join(10)
            self._thread = None
        if self._sock is not None:
            self._sock.close()  # hypercorn closed it already; closing twice is harmless
            self._sock = None
        self._dir.cleanup()

    def __enter__(self) -> TlsMock:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def anthropic_app(scope, receive, send):
    """A minimal Anthropic Messages upstream (ASGI) for `TlsMock`: HEAD answers 200, a POST gets the
    mock wire format (an SSE stream saying "over h2 we go" when asked to stream)."""
    if scope["type"] != "http":
        return
    body = await read_body(receive)
    if scope["method"] == "HEAD":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    payload = json.loads(body or b"{}")
    model = payload.get("model", "m")
    if payload.get("stream"):
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream")]})
        for event in sse_events(model, "over h2 we go", 4, 10):
            await send({"type": "http.response.body", "body": event, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    else:
        data = json.dumps(message_json(model, "over h2", 10, 2)).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": data})


async def read_body(receive) -> bytes:
    """An ASGI request's whole body."""
    body = b""
    while True:
        msg = await receive()
        body += msg.get("body", b"")
        if not msg.get("more_body"):
            return body
