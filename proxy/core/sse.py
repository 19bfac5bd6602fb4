"""Watching an SSE stream as it is relayed, without changing a byte of it.

`SseMeter.feed()` sees every chunk the shim relays: it counts bytes and events, and reads only the few
events that carry accounting (`message_start`, `message_delta`, `message_stop`, `error`). Text deltas
are counted, never decoded, so the meter's cost stays flat however long the answer is. An OpenAI
stream (passed through to an OpenAI client) is complete at `data: [DONE]`; its usage chunk counts.
"""
from __future__ import annotations

import json

try:  # the anthropic SDK's JSON parser: an event's data in a third of json's time, the same value
    import jiter
    jiter.from_json(b"{}", cache_mode="none")  # (a jiter too old for the options used here: none)
except (ImportError, TypeError, AttributeError):  # pragma: no cover - json reads them alone
    jiter = None

_ACCOUNTED = (b"message_start", b"message_delta", b"message_stop", b"error")
_SIGNED = (b"signature_delta", b"redacted_thinking")
# events named so carry no accounting (`_inspect`'s fast path; any other name takes the full walk)
_FAST_SKIP = frozenset((b"content_block_start", b"content_block_stop", b"ping"))


# the Messages API's usage field -> the meter's attribute (the record's token field)
_USAGE_FIELDS = (("input_tokens", "in_tokens"), ("output_tokens", "out_tokens"),
                 ("cache_read_input_tokens", "cache_read_tokens"),
                 ("cache_creation_input_tokens", "cache_creation_tokens"))


class SseMeter:
    """Incremental counters over one SSE body."""

    __slots__ = ("events", "bytes", "complete", "in_tokens", "out_tokens", "cache_read_tokens",
                 "cache_creation_tokens", "error_type", "signatures", "_tail")

    def __init__(self) -> None:
        self.events = 0
        self.bytes = 0
        self.complete = False
        self.in_tokens: int | None = None
        self.out_tokens: int | None = None
        self.cache_read_tokens: int | None = None
        self.cache_creation_tokens: int | None = None
        self.error_type: str | None = None
        self.signatures: list[str] = []  # thinking signatures seen (for cross-lane hygiene)
        self._tail = b""

    def feed(self, chunk: bytes) -> None:
        self.bytes += len(chunk)
        data = self._tail + chunk if self._tail else chunk
        if b"\r" in data:
            data = data.replace(b"\r\n", b"\n")
        events = data.split(b"\n\n")
        self._tail = events.pop()  # what follows the last blank line: the start of the next event
        if not events:
            return
        signed = b"signature_delta" in data
        counted = 0
        try:
            for event in events:
                if event.startswith(b"event: content_block_delta"):  # most of them: count, go on
                    counted += 1
                    if signed and b"signature_delta" in event:
                        self._signature(event)
                elif event.strip():
                    counted += 1
                    self._inspect(event)
        finally:
            self.events += counted

    def _inspect(self, event: bytes) -> None:
        # The usual shape, `event: NAME\ndata: JSON`, read without walking its lines: an event that
        # carries no accounting is done with at its name, the others are parsed at once.
        nl = event.find(b"\n")
        if (event.startswith(b"event: ") and event.startswith(b"data: ", nl + 1)
                and event.find(b"\n", nl + 1) < 0):
            name = event[7:nl].strip()
            if name == b"content_block_delta":
                if b"signature_delta" in event:
                    self._signature(event)
                return
            if name in _FAST_SKIP:
                head = event[:40]  # (what the full walk below decides this event by)
                if b"error" not in head and not (b"message_" in head and (
                        b"message_start" in head or b"message_delta" in head
                        or b"message_stop" in head)):
                    if b"signature_delta" in event or b"redacted_thinking" in event:
                        self._signature(event)
                return
            if name in _ACCOUNTED:
                payload = event[nl + 7:].strip()
                if payload:
                    self._account(payload)
                return
        self._inspect_any(event)

    def _inspect_any(self, event: bytes) -> None:
        if event.startswith(b"event: content_block_delta"):  # the bulk of any stream: no accounting
            if b"signature_delta" in event:
                self._signature(event)
            return
        head = event[:40]
        if head.startswith((b"data: [DONE]", b"data:[DONE]")):
            self.complete = True  # an OpenAI stream's normal end
            return
        # (_ACCOUNTED and _SIGNED spelled out: no generator per event)
        if b"event:" in head and b"error" not in head and not (b"message_" in head and (
                b"message_start" in head or b"message_delta" in head or b"message_stop" in head)):
            if b"signature_delta" in event or b"redacted_thinking" in event:
                self._signature(event)
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
        self._account(payload)

    def _account(self, payload: bytes) -> None:
        """An accounting event's data: usage, the end, an error."""
        try:
            obj = exact_loads(payload)
        except ValueError:
            return
        if not isinstance(obj, dict):
            return
        kind = obj.get("type")
        if kind is None and isinstance(obj.get("usage"), dict):  # OpenAI's usage chunk
            usage = obj["usage"]
            self._usage({"input_tokens": usage.get("prompt_tokens"),
                         "output_tokens": usage.get("completion_tokens")})
            return
        if kind == "message_start":
            self._usage((obj.get("message") or {}).get("usage"))
        elif kind == "message_delta":
            self._usage(obj.get("usage"))
        elif kind == "message_stop":
            self.complete = True
        elif kind == "error":
            err = obj.get("error")
            self.error_type = err.get("type") if isinstance(err, dict) else "error"

    def _signature(self, event: bytes) -> None:
        for line in event.split(b"\n"):
            if not line.startswith(b"data:"):
                continue
            try:
                obj = exact_loads(line[5:])
            except ValueError:
                return
            delta = obj.get("delta") if isinstance(obj, dict) else None
            block = obj.get("content_block") if isinstance(obj, dict) else None
            if isinstance(delta, dict) and delta.get("type") == "signature_delta":
                sig = delta.get("signature")
            elif isinstance(block, dict) and block.get("type") == "redacted_thinking":
                sig = block.get("data")
            else:
                sig = None
            if isinstance(sig, str) and sig:
                self.signatures.append(sig)

    def _usage(self, usage: object) -> None:
        if not isinstance(usage, dict):
            return
        # message_delta carries cumulative counts, so a later value replaces an earlier one.
        for field, attr in _USAGE_FIELDS:
            value = usage.get(field)
            if isinstance(value, int):
                setattr(self, attr, value)

    def summary(self, duration_ms: float) -> dict:
        return {"events": self.events, "bytes": self.bytes,
                "duration_ms": round(duration_ms, 3), "complete": self.complete}


def exact_loads(data: bytes):
    """json.loads' reading of `data`: jiter's when it takes it (the same value: integers of any
    size, NaN, the last of duplicate keys), else json's own, which also raises json's errors."""
    if jiter is not None:
        try:
            return jiter.from_json(data, cache_mode="none")
        except ValueError:
            pass
    return json.loads(data)


def tokens_from_message(body: bytes) -> dict:
    """Token counts from a non-streaming Messages response body (empty dict if none)."""
    try:
        obj = exact_loads(body)
    except ValueError:
        return {}
    return tokens_of_message(obj)


def tokens_of_message(obj: object) -> dict:
    """tokens_from_message() of a body already read."""
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


def assemble_message(raw: bytes) -> dict | None:
    """The Messages object an Anthropic SSE body describes (for trajectories), or None.

    Text, thinking and tool-use inputs are put back together from their deltas; a stream cut short
    gives what arrived, with `"stop_reason": null`.
    """
    message: dict | None = None
    blocks: dict[int, dict] = {}
    partial_json: dict[int, list[str]] = {}
    for event in raw.replace(b"\r\n", b"\n").split(b"\n\n"):
        data = b"".join(line[5:].strip() for line in event.split(b"\n") if line.startswith(b"data:"))
        if not data:
            continue
        try:
            obj = json.loads(data)
        except ValueError:
            continue
        kind = obj.get("type") if isinstance(obj, dict) else None
        if kind == "message_start":
            message = dict(obj.get("message") or {})
            message["content"] = []
        elif kind == "content_block_start":
            blocks[obj.get("index", 0)] = dict(obj.get("content_block") or {})
        elif kind == "content_block_delta":
            block = blocks.setdefault(obj.get("index", 0), {})
            delta = obj.get("delta") or {}
            dtype = delta.get("type")
            if dtype == "text_delta":
                block["text"] = block.get("text", "") + delta.get("text", "")
            elif dtype == "thinking_delta":
                block["thinking"] = block.get("thinking", "") + delta.get("thinking", "")
            elif dtype == "signature_delta":
                block["signature"] = delta.get("signature", "")
            elif dtype == "input_json_delta":
                partial_json.setdefault(obj.get("index", 0), []).append(delta.get("partial_json", ""))
        elif kind == "message_delta" and message is not None:
            message.update(obj.get("delta") or {})
            if isinstance(obj.get("usage"), dict):
                message["usage"] = {**(message.get("usage") or {}), **obj["usage"]}
    if message is None:
        return None
    for index in sorted(blocks):
        block = blocks[index]
        if index in partial_json:
            text = "".join(partial_json[index])
            try:
                block["input"] = json.loads(text) if text else {}
            except ValueError:
                block["input"] = {"_raw": text}
        message["content"].append(block)
    return message
