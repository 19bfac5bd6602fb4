"""Server-sent events: the one splitter, and watching a stream as it is relayed without changing a byte.

`EventSplitter.feed()` turns SSE bytes in any chunking into complete events (each event's lines,
ended by LF whatever the wire used: CRLF, LF or CR), and `end()` gives the last one when the stream
ended without its blank line; `parse_event()` reads an event's fields as the SSE spec does (comments
skipped, `data` lines joined by LF, one space after the colon dropped). `SseEvents` is the two
together, and `events_of()` reads a whole body. Every reader of SSE in the shim, the harness and the
reports uses these.

`SseMeter.feed()` sees every chunk the shim relays: it counts bytes and events, and reads only the few
events that carry accounting (`message_start`, `message_delta`, `message_stop`, `error`). Text deltas
are counted, never decoded, so the meter's cost stays flat however long the answer is. An OpenAI
stream (passed through to an OpenAI client) is complete at `data: [DONE]`; its usage chunk counts.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import NamedTuple

try:  # the anthropic SDK's JSON parser: an event's data faster than json, the same value
    import jiter

    jiter.from_json(b"{}", cache_mode="none")  # (a jiter too old for the options used here: none)
except (ImportError, TypeError, AttributeError):  # pragma: no cover - json reads them alone
    jiter = None  # type: ignore[assignment]  # (an optional module: None when missing)


class EventSplitter:
    """SSE bytes in any chunking -> the complete events, each as its lines joined by LF (no blank
    line after it). Line ends may be CRLF, LF or CR, also cut between chunks; a run of blank lines
    dispatches nothing. An event that has not seen its blank line yet waits for the next chunk, or
    for `end()`.

    Linear in the stream's bytes however it is cut: each chunk is scanned once for its own line
    ends, and the pieces of an event still open are kept as they came and joined once, when the
    event ends (a 20 MB event in 1-byte chunks is not re-scanned and re-copied per chunk)."""

    __slots__ = ("_parts", "_nl", "_cr")

    def __init__(self) -> None:
        # what follows the last blank line, the start of the next event, in the pieces it came in
        # (line ends already LF)
        self._parts: list[bytes] = []
        self._nl = False  # those pieces end in LF: a LF starting the next chunk ends the event
        self._cr = (
            False  # the last chunk ended in CR: a LF starting the next one is the same line end
        )

    @property
    def pending(self) -> bool:
        """Whether an event has begun and not ended yet."""
        return bool(self._parts)

    def feed(self, chunk: bytes) -> list[bytes]:
        events = self.split(chunk)
        if any(not e or e[0] == 10 for e in events):  # blank lines beyond the one ending an event
            events = [e for e in (e.lstrip(b"\n") for e in events) if e]
        return events

    def split(self, chunk: bytes) -> list[bytes]:
        """`feed()` without tidying runs of blank lines: an event may begin with LF, or be empty
        (`SseMeter`'s hot path, which reads such an event as `parse_event` does and skips empty
        ones; the check for them would be a second scan of every chunk)."""
        if self._cr:
            if chunk:
                self._cr = False
                if chunk[0] == 10:
                    chunk = chunk[1:]
        if not chunk:
            return []
        if b"\r" in chunk:
            self._cr = chunk[-1] == 13
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        parts = self._parts
        if b"\n\n" not in chunk and not (self._nl and chunk[0] == 10):
            parts.append(chunk)  # the event goes on: kept, not joined yet
            self._nl = chunk[-1] == 10
            return []
        if parts:
            parts.append(chunk)
            chunk = b"".join(parts)
            parts.clear()
        events = chunk.split(b"\n\n")
        tail = events.pop()
        if tail:
            parts.append(tail)
            self._nl = tail[-1] == 10
        else:
            self._nl = False
        return events

    def end(self) -> list[bytes]:
        """The stream ended: the event still waiting for its blank line, if any (it is dispatched,
        as a stream that just lacks its last blank line means it)."""
        tail = b"".join(self._parts).strip(b"\n")
        self._parts.clear()
        self._nl = self._cr = False
        return [tail] if tail else []


class Event(NamedTuple):
    """One event's fields (bytes, as on the wire)."""

    name: bytes  # the `event` field; b"" when there is none (a browser would say "message")
    data: bytes | None  # the `data` lines joined by LF; None when the event has no data line
    id: bytes | None = None


def parse_event(block: bytes) -> Event:
    """An event's fields, as the SSE spec reads its lines (`EventSplitter` gives the lines)."""
    name, data, last_id = b"", None, None
    for line in block.split(b"\n"):
        if not line or line[0] == 58:  # b":": a comment
            continue
        field, colon, value = line.partition(b":")
        if colon and value[:1] == b" ":
            value = value[1:]
        if field == b"data":
            data = value if data is None else data + b"\n" + value
        elif field == b"event":
            name = value
        elif field == b"id" and b"\0" not in value:
            last_id = value
    return Event(name, data, last_id)


class SseEvents:
    """`EventSplitter` and `parse_event` together: chunks in, parsed events out."""

    __slots__ = ("_split",)

    def __init__(self) -> None:
        self._split = EventSplitter()

    def feed(self, chunk: bytes) -> list[Event]:
        return [parse_event(block) for block in self._split.feed(chunk)]

    def end(self) -> list[Event]:
        return [parse_event(block) for block in self._split.end()]


def events_of(body: bytes | Iterable[bytes]) -> list[Event]:
    """Every event of a whole SSE body (or of its chunks), the last one also without its blank line."""
    reader = SseEvents()
    out: list[Event] = []
    for chunk in (body,) if isinstance(body, (bytes, bytearray)) else body:
        out += reader.feed(bytes(chunk))
    return out + reader.end()


_ACCOUNTED = (b"message_start", b"message_delta", b"message_stop", b"error")
# events named so carry no accounting (`_inspect`'s fast path; any other name takes the full walk)
_FAST_SKIP = frozenset((b"content_block_start", b"content_block_stop", b"ping"))


# the Messages API's usage field -> the meter's attribute (the record's token field)
_USAGE_FIELDS = (
    ("input_tokens", "in_tokens"),
    ("output_tokens", "out_tokens"),
    ("cache_read_input_tokens", "cache_read_tokens"),
    ("cache_creation_input_tokens", "cache_creation_tokens"),
)


def _mentions_accounting(head: bytes) -> bool:
    """Whether an event's first 40 bytes name an accounting event: a named event that carries none
    but mentions one learns no signature (the same rule on the fast path and the full walk)."""
    return b"error" in head or (
        b"message_" in head
        and (b"message_start" in head or b"message_delta" in head or b"message_stop" in head)
    )


class SseMeter:
    """Incremental counters over one SSE body.

    Events come from `EventSplitter`, so they are the events every other reader sees; what the meter
    adds is reading them fast: the usual `event: NAME\ndata: JSON` shape and OpenAI's one `data:`
    line are sliced, not walked, and most events are done with at their name. Any other shape is read
    by `parse_event`. (tests/proxy/core/test_sse.py feeds random streams to both and compares.)
    """

    __slots__ = (
        "events",
        "bytes",
        "complete",
        "in_tokens",
        "out_tokens",
        "cache_read_tokens",
        "cache_creation_tokens",
        "error_type",
        "signatures",
        "_split",
    )

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
        self._split = EventSplitter()

    @property
    def mid_event(self) -> bool:
        """Whether the bytes so far stop inside an event (a stream cut there)."""
        return self._split.pending

    def feed(self, chunk: bytes) -> None:
        self.bytes += len(chunk)
        split = self._split
        carried = split.pending  # (the start of an event that an earlier chunk began)
        events = split.split(chunk)
        if not events:
            return
        # One scan of the chunk instead of one per delta: an event that names signature_delta is
        # in this chunk, or it is the first event, begun in an earlier chunk.
        signed = b"signature_delta" in chunk or (carried and b"signature_delta" in events[0])
        counted = 0
        try:
            for event in events:
                if event.startswith(b"event: content_block_delta"):  # most of them: count, go on
                    counted += 1
                    if signed and b"signature_delta" in event:
                        self._signature(_data_of(event))
                elif event.strip():
                    counted += 1
                    self._inspect(event)
        finally:
            self.events += counted

    def _inspect(self, event: bytes) -> None:
        # The usual shape, `event: NAME\ndata: JSON`, read without walking its lines: an event that
        # carries no accounting is done with at its name, the others are parsed at once.
        nl = event.find(b"\n")
        if (
            event.startswith(b"event: ")
            and event.startswith(b"data: ", nl + 1)
            and event.find(b"\n", nl + 1) < 0
        ):
            name = event[7:nl].strip()
            if name == b"content_block_delta":
                if b"signature_delta" in event:
                    self._signature(event[nl + 7 :])
                return
            if name in _FAST_SKIP:
                if (
                    b"signature_delta" in event or b"redacted_thinking" in event
                ) and not _mentions_accounting(event[:40]):
                    self._signature(event[nl + 7 :])
                return
            if name in _ACCOUNTED:
                payload = event[nl + 7 :].strip()
                if payload:
                    self._account(payload)
                return
        self._inspect_any(event)

    def _inspect_any(self, event: bytes) -> None:
        if event.startswith(b"data:") and b"\n" not in event:  # OpenAI's chunks: one data line
            name, payload = b"", event[5:].strip()
        else:  # any other shape: as the spec reads it
            fields = parse_event(event)
            name, payload = fields.name.strip(), (fields.data or b"").strip()
        if name == b"content_block_delta":  # the bulk of any stream: no accounting
            if b"signature_delta" in payload:
                self._signature(payload)
            return
        if name and name not in _ACCOUNTED:
            if (
                b"signature_delta" in payload or b"redacted_thinking" in payload
            ) and not _mentions_accounting(event[:40]):
                self._signature(payload)
            return
        if payload == b"[DONE]":
            self.complete = True  # an OpenAI stream's normal end
        elif payload:
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
            self._usage(
                {
                    "input_tokens": usage.get("prompt_tokens"),
                    "output_tokens": usage.get("completion_tokens"),
                }
            )
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

    def _signature(self, data: bytes) -> None:
        """A thinking signature from an event's data: a signature_delta, or a redacted_thinking
        block's data."""
        try:
            obj = exact_loads(data)
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
        return {
            "events": self.events,
            "bytes": self.bytes,
            "duration_ms": round(duration_ms, 3),
            "complete": self.complete,
        }


def _data_of(event: bytes) -> bytes:
    """An event's data: sliced in the usual two-line shape, else as the spec reads it."""
    nl = event.find(b"\n")
    if nl > 0 and event.startswith(b"data: ", nl + 1) and event.find(b"\n", nl + 1) < 0:
        return event[nl + 7 :]
    return parse_event(event).data or b""


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
    return {
        "in_tokens": usage.get("input_tokens"),
        "out_tokens": usage.get("output_tokens"),
        "cache_read_tokens": usage.get("cache_read_input_tokens"),
        "cache_creation_tokens": usage.get("cache_creation_input_tokens"),
    }


def error_event(error_type: str, message: str) -> bytes:
    """An Anthropic SSE `error` event, for telling a client its stream was cut."""
    payload = json.dumps(
        {"type": "error", "error": {"type": error_type, "message": message}}, separators=(",", ":")
    )
    return f"event: error\ndata: {payload}\n\n".encode()


def assemble_message(raw: bytes) -> dict | None:
    """The Messages object an Anthropic SSE body describes (for trajectories), or None.

    Text, thinking and tool-use inputs are put back together from their deltas; a stream cut short
    gives what arrived, with `"stop_reason": null`.
    """
    message: dict | None = None
    blocks: dict[int, dict] = {}
    partial_json: dict[int, list[str]] = {}
    for event in events_of(raw):
        data = event.data
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
                partial_json.setdefault(obj.get("index", 0), []).append(
                    delta.get("partial_json", "")
                )
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
