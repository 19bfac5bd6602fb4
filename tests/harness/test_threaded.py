import asyncio

import pytest

from harness.threaded import ThreadedServer

pytestmark = pytest.mark.quick


class Dummy(ThreadedServer):
    _thread_name = "dummy"

    def __init__(self, fail=False):
        self.fail, self.closed = fail, False

    async def _open(self):
        self._loop = asyncio.get_running_loop()
        if self.fail:
            raise OSError("cannot bind")
        self._port = 4242

    async def _close(self):
        self.closed = True


def test_start_stop_and_errors():
    with pytest.raises(RuntimeError, match="dummy is not started"):
        Dummy().port
    with Dummy() as server:
        assert server._thread.is_alive() and server.port == 4242
    assert server.closed and server._thread is None
    with pytest.raises(OSError, match="cannot bind"):
        Dummy(fail=True).start()
