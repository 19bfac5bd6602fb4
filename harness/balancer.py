"""A tiny round-robin TCP load balancer on 127.0.0.1, for fleet scenarios: each accepted connection
goes to the next backend in turn (no HTTP parsing, no stickiness), its bytes copied both ways until
either side closes. `connections` counts what each backend got.

    with RoundRobin([("127.0.0.1", 18081), ("127.0.0.1", 18082)]) as lb:
        url = lb.url  # http://127.0.0.1:<port>
"""
from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Sequence

from harness.threaded import ThreadedServer

CHUNK = 65536


class RoundRobin(ThreadedServer):
    _thread_name = "round-robin-balancer"

    def __init__(self, backends: Sequence[tuple[str, int]], host: str = "127.0.0.1") -> None:
        if not backends:
            raise ValueError("a balancer needs at least one backend")
        self.backends = list(backends)
        self.host = host
        self.connections = [0] * len(self.backends)
        self._turn = itertools.cycle(range(len(self.backends)))
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task] = set()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def _open(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._server = await asyncio.start_server(self._accept, self.host, 0)
        self._port = self._server.sockets[0].getsockname()[1]

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        index = next(self._turn)
        self.connections[index] += 1
        host, port = self.backends[index]
        try:
            try:
                up_reader, up_writer = await asyncio.open_connection(host, port)
            except OSError:
                return  # the client sees its connection closed, as behind a real balancer
            try:
                await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
            finally:
                await _close(up_writer)
        finally:
            await _close(writer)
            self._tasks.discard(task)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until EOF, then half-close the other side (so a client that finished sending still
    gets its answer)."""
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        writer.transport.abort()


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError, OSError):
        await writer.wait_closed()
