"""A server that runs in its own thread and event loop, for tests that live in the main thread.

A subclass provides `async _open()` (bind, set `self._loop`) and `async _close()`; `start()` returns
once the port is bound (or re-raises what binding raised), `stop()` ends the loop and joins the
thread. Both are bounded in time.
"""
from __future__ import annotations

import asyncio
import threading

START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0


class ThreadedServer:
    _thread_name = "threaded-server"
    _thread: threading.Thread | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    _port: int | None = None  # set by `_open()` once bound

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError(f"{self._thread_name} is not started")
        return self._port

    async def _open(self) -> None:
        raise NotImplementedError

    async def _close(self) -> None:
        raise NotImplementedError

    def start(self):
        """Serve in a background thread with its own event loop; returns once the port is bound."""
        if self._thread is not None:
            raise RuntimeError(f"{self._thread_name} already started")
        ready, errors = threading.Event(), []

        async def serve() -> None:
            try:
                await self._open()
            except BaseException as exc:  # re-raised in start()'s thread
                errors.append(exc)
                return
            finally:
                ready.set()
            try:
                await self._stop_requested.wait()
            finally:
                await self._close()

        self._stop_requested = asyncio.Event()
        self._thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True,
                                        name=self._thread_name)
        self._thread.start()
        if not ready.wait(START_TIMEOUT) or errors:
            self.stop()
            raise errors[0] if errors else RuntimeError(f"{self._thread_name} did not start in time")
        return self

    def stop(self) -> None:
        """Stop serving and join the thread."""
        thread, loop = self._thread, self._loop
        if thread is None:
            return
        try:
            loop.call_soon_threadsafe(self._stop_requested.set)
        except (AttributeError, RuntimeError):  # never bound, or its loop already closed
            pass
        thread.join(STOP_TIMEOUT)
        self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
