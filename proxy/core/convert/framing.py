"""What both stream converters share: SSE framing in, queued bytes out, and one way to finish.

`SseReader` splits upstream bytes in any chunking into (event, data) pairs; `Converter` is the base
of both directions: `feed()` returns the bytes to relay now, `finish()` closes the stream with its
protocol's normal ending or, when the answer was not finished, with an error event. Pure: no I/O.
"""
from __future__ import annotations

import json

from proxy.core.convert.requests import json_bytes

INCOMPLETE = "upstream stream ended before the answer was complete"


class SseReader:
    """Splits SSE bytes into (event name, data) pairs; keeps a partial line for the next chunk."""

    def __init__(self) -> None:
        self._tail = b""
        self._event = ""
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[tuple[str, str]]:
        lines = (self._tail + chunk).split(b"\n")
        self._tail = lines.pop()
        out = []
        for raw in lines:
            line = raw.rstrip(b"\r").decode("utf-8", "replace")
            if not line:
                if self._data:
                    out.append((self._event, "\n".join(self._data)))
                self._event, self._data = "", []
            elif line.startswith("data:"):
                self._data.append(line[5:].lstrip(" "))
            elif line.startswith("event:"):
                self._event = line[6:].strip()
        return out


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
        self._reader = SseReader()
        self._out: list[bytes] = []
        self._ended = False

    def feed(self, chunk: bytes) -> bytes:
        """Bytes to send to the client for this piece of the upstream body (may be b"")."""
        for _, data in self._reader.feed(chunk):
            if self._ended:
                break
            self._data(data)
        return self._take()

    def finish(self, error: str | None = None) -> bytes:
        """Close the stream: the normal ending if the answer was finished, else an error event."""
        if not self._ended:
            self.feed(b"\n\n")
            if error is None and self._answer_finished():
                self._end()
            elif not self._ended:
                self._fail(error or INCOMPLETE)
        return self._take()

    def _take(self) -> bytes:
        out, self._out = b"".join(self._out), []
        return out
