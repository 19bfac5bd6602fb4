"""Streamed answers translated chunk by chunk between OpenAI and Anthropic server-sent events.

Both converters take raw upstream bytes in any chunking (`feed()`), return the bytes to relay now,
and are closed by `finish()` when the upstream body ends, normally or not. A stream always ends
cleanly: either with its protocol's normal ending, or with an error event after every open block
is closed. Neither does any I/O.

OpenAI → Anthropic ordering: an Anthropic content block must be started, receive its deltas and be
stopped before the next one starts, while OpenAI may interleave parallel tool calls (keyed by
`index`). The open block stays open while its tool arguments are not yet a complete JSON value;
fragments for any other block meanwhile wait in `_pending` (in arrival order) and are sent when the
open block can close, or at the end. No fragment is dropped and no delta names an unstarted block.
Usage may arrive in a last chunk with no choices, so `message_delta` waits for `[DONE]`/`finish()`.
"""
from __future__ import annotations

import json

from proxy.convert.requests import parse_arguments
from proxy.convert.responses import (anthropic_usage, completion_id, finish_reason, message_id,
                                     openai_usage, reasoning_text, stop_reason)

INCOMPLETE = "upstream stream ended before the answer was complete"


class _SseReader:
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


def _sse(name: str | None, obj: object) -> bytes:
    data = obj if isinstance(obj, str) else json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    head = f"event: {name}\n" if name else ""
    return f"{head}data: {data}\n\n".encode()


def _loads(data: str) -> dict | None:
    try:
        obj = json.loads(data)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


class _Tool:
    __slots__ = ("id", "name", "args", "sent", "closed", "late")

    def __init__(self) -> None:
        self.id, self.name, self.args, self.late = "", "", "", ""
        self.sent = 0
        self.closed = False


class _Converter:
    """What both directions share: SSE framing in, queued bytes out, and the one way to finish.

    A subclass provides `_data(data)`, `_answer_finished()`, `_end()` and `_fail(message, error_type)`.
    """

    def __init__(self) -> None:
        self.complete = False
        self.error: str | None = None
        self._reader = _SseReader()
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


class OpenAIToAnthropicStream(_Converter):
    """OpenAI `chat.completion.chunk` SSE in, Anthropic Messages SSE out."""

    def __init__(self, model: str) -> None:
        super().__init__()
        self.model = model
        self.stop_reason: str | None = None
        self.usage = anthropic_usage(None)
        self.events = 0
        self._id = message_id(None)
        self._started = False
        self._finish: str | None = None
        self._blocks: list[dict] = []
        self._open: str | None = None
        self._pending: dict[str, str] = {}
        self._tools: dict[str, _Tool] = {}

    @property
    def message(self) -> dict:
        """The Anthropic message the stream has described so far, with full texts and tool inputs."""
        content = []
        for block in self._blocks:
            if block["type"] == "tool_use":
                tool = self._tools[block["key"]]
                block = {"type": "tool_use", "id": block["id"], "name": block["name"],
                         "input": parse_arguments(tool.args + tool.late)}
            content.append(dict(block))
        return {"id": self._id, "type": "message", "role": "assistant", "model": self.model,
                "content": content, "stop_reason": self.stop_reason, "stop_sequence": None,
                "usage": dict(self.usage)}

    # -- upstream chunks ------------------------------------------------------------------------
    def _data(self, data: str) -> None:
        if data.strip() == "[DONE]":
            self._end()
        elif (obj := _loads(data)) is not None:
            self._chunk(obj)

    def _answer_finished(self) -> bool:
        return self._finish is not None

    def _chunk(self, obj: dict) -> None:
        if obj.get("error") and not obj.get("choices"):
            error = obj["error"]
            self._fail(error.get("message") if isinstance(error, dict) else str(error))
            return
        if not self._started:
            self._id = message_id(obj.get("id"))
        if obj.get("usage"):
            self.usage = anthropic_usage(obj["usage"])
        self._start_message()
        for choice in obj.get("choices") or []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            if reasoning := reasoning_text(delta):
                self._route("thinking", reasoning)
            if isinstance(delta.get("content"), str) and delta["content"]:
                self._route("text", delta["content"])
            for n, call in enumerate(delta.get("tool_calls") or []):
                self._tool_fragment(n, call)
            if choice.get("finish_reason"):
                self._finish = choice["finish_reason"]

    def _tool_fragment(self, position: int, call: dict) -> None:
        key = f"tool:{call.get('index', position)}"
        tool = self._tools.setdefault(key, _Tool())
        function = call.get("function") or {}
        tool.id = tool.id or call.get("id") or ""
        tool.name = tool.name or function.get("name") or ""
        args = function.get("arguments") or ""
        if tool.closed:
            tool.late += args  # after a complete JSON value: kept in .message, cannot be streamed
            return
        tool.args += args
        self._route(key, "")

    # -- block ordering -------------------------------------------------------------------------
    def _route(self, key: str, piece: str) -> None:
        if self._open == key:
            self._delta(key, piece)
        elif self._pending or not self._closable():
            self._pending[key] = self._pending.get(key, "") + piece
        else:
            self._switch(key, piece)
        while self._pending and self._closable():
            next_key = next(iter(self._pending))
            self._switch(next_key, self._pending.pop(next_key))

    def _closable(self) -> bool:
        if self._open is None or not self._open.startswith("tool:"):
            return True
        try:
            json.loads(self._tools[self._open].args)
        except ValueError:
            return False
        return True

    def _switch(self, key: str, piece: str) -> None:
        self._close_block()
        index = len(self._blocks)
        if key == "thinking":
            block = {"type": "thinking", "thinking": "", "signature": ""}
        elif key == "text":
            block = {"type": "text", "text": ""}
        else:
            tool = self._tools[key]
            block = {"type": "tool_use", "id": tool.id or f"toolu_{self._id[4:]}_{index}",
                     "name": tool.name, "input": {}}
        self._emit("content_block_start", {"type": "content_block_start", "index": index,
                                           "content_block": block})
        self._blocks.append({**block, "key": key} if key.startswith("tool:") else block)
        self._open = key
        self._delta(key, piece)

    def _delta(self, key: str, piece: str) -> None:
        block, index = self._blocks[-1], len(self._blocks) - 1
        if key.startswith("tool:"):
            tool = self._tools[key]
            piece, tool.sent = tool.args[tool.sent:], len(tool.args)
            delta = {"type": "input_json_delta", "partial_json": piece}
        elif key == "thinking":
            block["thinking"] += piece
            delta = {"type": "thinking_delta", "thinking": piece}
        else:
            block["text"] += piece
            delta = {"type": "text_delta", "text": piece}
        if piece:
            self._emit("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})

    def _close_block(self) -> None:
        if self._open is None:
            return
        if self._open.startswith("tool:"):
            self._tools[self._open].closed = True
        self._emit("content_block_stop", {"type": "content_block_stop", "index": len(self._blocks) - 1})
        self._open = None

    # -- message framing ------------------------------------------------------------------------
    def _start_message(self) -> None:
        if self._started:
            return
        self._started = True
        self._emit("message_start", {"type": "message_start", "message": {
            "id": self._id, "type": "message", "role": "assistant", "model": self.model, "content": [],
            "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": self.usage["input_tokens"], "output_tokens": 0}}})
        self._emit("ping", {"type": "ping"})

    def _end(self) -> None:
        self._start_message()
        while self._pending:
            key = next(iter(self._pending))
            self._switch(key, self._pending.pop(key))
        self._close_block()
        self.stop_reason = stop_reason(self._finish, called_tools=bool(self._tools))
        usage = {"input_tokens": self.usage["input_tokens"], "output_tokens": self.usage["output_tokens"]}
        if self.usage["cache_read_input_tokens"]:
            usage["cache_read_input_tokens"] = self.usage["cache_read_input_tokens"]
        self._emit("message_delta", {"type": "message_delta", "usage": usage,
                                     "delta": {"stop_reason": self.stop_reason, "stop_sequence": None}})
        self._emit("message_stop", {"type": "message_stop"})
        self.complete = self._ended = True

    def _fail(self, message: str, error_type: str = "api_error") -> None:
        self._close_block()
        self._pending.clear()
        self.error = message
        self._emit("error", {"type": "error", "error": {"type": error_type, "message": message}})
        self._ended = True

    def _emit(self, name: str, obj: dict) -> None:
        self.events += 1
        self._out.append(_sse(name, obj))


class AnthropicToOpenAIStream(_Converter):
    """Anthropic Messages SSE in, OpenAI `chat.completion.chunk` SSE out (ending `data: [DONE]`).

    `.usage` is kept in Anthropic terms (`input_tokens`, `output_tokens`, cache counters).
    """

    def __init__(self, model: str, created: int = 0) -> None:
        super().__init__()
        self.model = model
        self.created = created
        self.usage = {"input_tokens": 0, "output_tokens": 0,
                      "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
        self._id = completion_id(None)
        self._started = False
        self._stop: str | None = None
        self._tool_index: dict[int, int] = {}

    def _data(self, data: str) -> None:
        if (obj := _loads(data)) is not None:
            self._event(obj)

    def _answer_finished(self) -> bool:
        return self._stop is not None

    def _event(self, obj: dict) -> None:
        kind = obj.get("type")
        if kind == "message_start":
            message = obj.get("message") or {}
            self._id = completion_id(message.get("id"))
            self._usage(message.get("usage"))
            self._started = True
            self._chunk({"role": "assistant", "content": ""})
        elif kind == "content_block_start":
            block = obj.get("content_block") or {}
            if block.get("type") == "tool_use":
                position = self._tool_index.setdefault(obj.get("index", 0), len(self._tool_index))
                self._chunk({"tool_calls": [{"index": position, "id": block.get("id", ""), "type": "function",
                                             "function": {"name": block.get("name", ""), "arguments": ""}}]})
        elif kind == "content_block_delta":
            self._block_delta(obj.get("index", 0), obj.get("delta") or {})
        elif kind == "message_delta":
            self._stop = (obj.get("delta") or {}).get("stop_reason") or self._stop or "end_turn"
            self._usage(obj.get("usage"))
        elif kind == "message_stop":
            self._end()
        elif kind == "error":
            error = obj.get("error") or {}
            self._fail(error.get("message", "upstream error"), error.get("type", "api_error"))

    def _block_delta(self, index: int, delta: dict) -> None:
        kind = delta.get("type")
        if kind == "text_delta" and delta.get("text"):
            self._chunk({"content": delta["text"]})
        elif kind == "thinking_delta" and delta.get("thinking"):
            self._chunk({"reasoning_content": delta["thinking"]})
        elif kind == "input_json_delta" and delta.get("partial_json") and index in self._tool_index:
            self._chunk({"tool_calls": [{"index": self._tool_index[index],
                                         "function": {"arguments": delta["partial_json"]}}]})

    def _usage(self, usage: object) -> None:
        for key, value in (usage or {}).items() if isinstance(usage, dict) else ():
            if key in self.usage and isinstance(value, int):
                self.usage[key] = value

    def _chunk(self, delta: dict, finish: str | None = None, usage: dict | None = None) -> None:
        obj: dict = {"id": self._id, "object": "chat.completion.chunk", "created": self.created,
                     "model": self.model,
                     "choices": [] if usage else [{"index": 0, "delta": delta, "logprobs": None,
                                                   "finish_reason": finish}]}
        if usage:
            obj["usage"] = usage
        self._out.append(_sse(None, obj))

    def _end(self) -> None:
        self._chunk({}, finish=finish_reason(self._stop))
        if self._started:
            self._chunk({}, usage=openai_usage(self.usage))
        self._out.append(_sse(None, "[DONE]"))
        self.complete = self._ended = True

    def _fail(self, message: str, error_type: str = "api_error") -> None:
        self.error = message
        self._out.append(_sse(None, {"error": {"message": message, "type": error_type,
                                               "param": None, "code": None}}))
        self._out.append(_sse(None, "[DONE]"))
        self._ended = True
