"""The round-robin TCP balancer: connections alternate over the backends, bytes go both ways."""
import asyncio
import socket

import pytest

from harness.balancer import RoundRobin
from harness.threaded import ThreadedServer

pytestmark = pytest.mark.quick


class Echo(ThreadedServer):
    """Answers each connection with its name and what it read, then closes."""

    def __init__(self, name: bytes) -> None:
        self.name = name
        self._server = None

    async def _open(self):
        self._loop = asyncio.get_running_loop()
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self._port = self._server.sockets[0].getsockname()[1]

    async def _close(self):
        self._server.close()
        await self._server.wait_closed()

    async def _serve(self, reader, writer):
        data = await reader.read()  # until the client half-closes
        writer.write(self.name + b":" + data)
        await writer.drain()
        writer.close()
        await writer.wait_closed()


def ask(port: int, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        out = b""
        try:
            s.sendall(payload)
            s.shutdown(socket.SHUT_WR)
            while chunk := s.recv(65536):
                out += chunk
        except OSError:  # closed by the balancer before we were done (its backend is down)
            pass
        return out


def test_connections_alternate_over_the_backends_and_bytes_go_both_ways():
    with Echo(b"a") as a, Echo(b"b") as b:
        with RoundRobin([("127.0.0.1", a.port), ("127.0.0.1", b.port)]) as lb:
            assert lb.url == f"http://127.0.0.1:{lb.port}"
            got = [ask(lb.port, b"x" * 100_000 if i == 2 else b"hi") for i in range(4)]
            assert [g[:2] for g in got] == [b"a:", b"b:", b"a:", b"b:"]
            assert got[2] == b"a:" + b"x" * 100_000 and got[1] == b"b:hi"
            assert lb.connections == [2, 2]


def test_a_backend_that_is_down_closes_the_client_connection():
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        dead = free.getsockname()[1]
    with RoundRobin([("127.0.0.1", dead)]) as lb:
        assert ask(lb.port, b"hi") == b""
    with pytest.raises(ValueError):
        RoundRobin([])
