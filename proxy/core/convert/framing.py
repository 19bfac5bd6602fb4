"""What both stream converters share: SSE framing in, queued bytes out, and one way to finish.

Upstream bytes in any chunking are read by the shim's one SSE reader (`proxy.core.sse.SseEvents`);
`Converter` is the base of both directions: `feed()` returns the bytes to relay now, `finish()`
closes the stream with its protocol's normal ending or, when the answer was not finished, with an
error event. Pure: no I/O.
"""

from __future__ import annotations

import json

from proxy.core.convert.requests import json_bytes
from proxy.core.sse import SseEvents

INCOMPLETE = "upstream stream ended before the answer was complete"


def sse(name: str | None, obj: object) -> bytes:
    """One SSE frame: `event: name` (when given) and `data:` the object as compact JSON (or a string)."""
    data = obj.encode() if isinstance(obj, str) else json_bytes(obj)
    if name:
        return b"event: " + name.encode() + b"\ndata: " + data + b"\n\n"
    return b"data: " + data + b"\n\n"


def loads_object(data: str) -> dict | None:
    try:
        obj = json.loads(data)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


class Converter:
    """What both directions share: SSE framing in, queued bytes out, and the one way to finish.

    A subclass provides `_data(data)`, `_answer_finished()`, `_end()` and `_fail(message, error_type)`.
    """

    def __init__(self) -> None:
        self.complete = False
        self.error: str | None = None
        self._reader = SseEvents()
        self._out: list[bytes] = []
        self._ended = False

    def feed(self, chunk: bytes) -> bytes:
        """Bytes to send to the client for this piece of the upstream body (may be b"")."""
        self._events(self._reader.feed(chunk))
        return self._take()

    def _events(self, events: list) -> None:
        for event in events:
            if self._ended:
                break
            if event.data is not None:  # (an event without data dispatches nothing)
                self._data(event.data.decode("utf-8", "replace"))

    def finish(self, error: str | None = None) -> bytes:
        """Close the stream: the normal ending if the answer was finished, else an error event."""
        if not self._ended:
            self._events(self._reader.end())  # the last event, when no blank line followed it
        if not self._ended:
            if error is None and self._answer_finished():
                self._end()
            else:
                self._fail(error or INCOMPLETE)
        return self._take()

    def _take(self) -> bytes:
        out, self._out = b"".join(self._out), []
        return out

    # -- what a subclass provides ------------------------------------------------------------------
    def _data(self, data: str) -> None:
        """One event's data, decoded."""
        raise NotImplementedError

    def _answer_finished(self) -> bool:
        raise NotImplementedError

    def _end(self) -> None:
        """Queue the protocol's normal ending."""
        raise NotImplementedError

    def _fail(self, message: str, error_type: str = "api_error") -> None:
        """Queue an error event (the stream ends with it)."""
        raise NotImplementedError
