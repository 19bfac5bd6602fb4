"""Watching an Anthropic SSE stream as it is relayed, without changing a byte of it.

`SseMeter.feed()` sees every chunk the shim relays: it counts bytes and events, and reads only the few
events that carry accounting (`message_start`, `message_delta`, `message_stop`, `error`). Text deltas
are counted, never decoded, so the meter's cost stays flat however long the answer is.
"""
from __future__ import annotations

import json

_ACCOUNTED = (b"message_start", b"message_delta", b"message_stop", b"error")


class SseMeter:
    """Incremental counters over one SSE body."""

    __slots__ = ("events", "bytes", "complete", "in_tokens", "out_tokens", "cache_read_tokens",
                 "cache_creation_tokens", "error_type", "_tail")

    def __init__(self) -> None:
        self.events = 0
        self.bytes = 0
        self.complete = False
        self.in_tokens: int | None = None
        self.out_tokens: int | None = None
        self.cache_read_tokens: int | None = None
        self.cache_creation_tokens: int | None = None
        self.error_type: str | None = None
        self._tail = b""

    def feed(self, chunk: bytes) -> None:
        self.bytes += len(chunk)
        data = self._tail + chunk if self._tail else chunk
        if b"\r" in data:
            data = data.replace(b"\r\n", b"\n")
        if b"\n\n" not in data:
            self._tail = data
            return
        *events, self._tail = data.split(b"\n\n")
        for event in events:
            if event.strip():
                self.events += 1
                self._inspect(event)

    def _inspect(self, event: bytes) -> None:
        head = event[:40]
        if not any(name in head for name in _ACCOUNTED) and b"event:" in head:
            return
        name = b""
        payload = b""
        for line in event.split(b"\n"):
            if line.startswith(b"event:"):
                name = line[6:].strip()
            elif line.startswith(b"data:"):
                payload = line[5:].strip()
        if not payload or (name and name not in _ACCOUNTED):
            return
        try:
            obj = json.loads(payload)
        except ValueError:
            return
        if not isinstance(obj, dict):
            return
        kind = obj.get("type")
        if kind == "message_start":
            self._usage((obj.get("message") or {}).get("usage"))
        elif kind == "message_delta":
            self._usage(obj.get("usage"))
        elif kind == "message_stop":
            self.complete = True
        elif kind == "error":
            err = obj.get("error")
            self.error_type = err.get("type") if isinstance(err, dict) else "error"

    def _usage(self, usage: object) -> None:
        if not isinstance(usage, dict):
            return
        # message_delta carries cumulative counts, so a later value replaces an earlier one.
        for key, attr in (("input_tokens", "in_tokens"), ("output_tokens", "out_tokens"),
                          ("cache_read_input_tokens", "cache_read_tokens"),
                          ("cache_creation_input_tokens", "cache_creation_tokens")):
            value = usage.get(key)
            if isinstance(value, int):
                setattr(self, attr, value)

    def summary(self, duration_ms: float) -> dict:
        return {"events": self.events, "bytes": self.bytes,
                "duration_ms": round(duration_ms, 3), "complete": self.complete}


def tokens_from_message(body: bytes) -> dict:
    """Token counts from a non-streaming Messages response body (empty dict if none)."""
    try:
        obj = json.loads(body)
    except ValueError:
        return {}
    usage = obj.get("usage") if isinstance(obj, dict) else None
    if not isinstance(usage, dict):
        return {}
    return {"in_tokens": usage.get("input_tokens"), "out_tokens": usage.get("output_tokens"),
            "cache_read_tokens": usage.get("cache_read_input_tokens"),
            "cache_creation_tokens": usage.get("cache_creation_input_tokens")}


def error_event(error_type: str, message: str) -> bytes:
    """An Anthropic SSE `error` event, for telling a client its stream was cut."""
    payload = json.dumps({"type": "error", "error": {"type": error_type, "message": message}},
                         separators=(",", ":"))
    return f"event: error\ndata: {payload}\n\n".encode()
