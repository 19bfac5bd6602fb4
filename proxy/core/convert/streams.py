"""Streamed answers translated chunk by chunk between OpenAI and Anthropic server-sent events.

`OpenAIToAnthropicStream` (here) and `AnthropicToOpenAIStream` (`streams_openai`) take raw upstream
bytes in any chunking (`feed()`), return the bytes to relay now, and are closed by `finish()` when
the upstream body ends, normally or not (`framing.Converter`). A stream always ends cleanly: with its
protocol's normal ending, or with an error event after every open block is closed. No I/O.
`message_events()` writes a whole Anthropic message as the stream that would have carried it (a
provider that answered JSON to a streaming request).

OpenAI → Anthropic, what real providers send and what the client gets:
- Ordering: an Anthropic content block must be started, fed and stopped before the next one starts,
  while OpenAI may interleave parallel tool calls. The open block stays open while its tool arguments
  are not yet a complete JSON value; fragments for any other block meanwhile wait in `_pending` (in
  arrival order) and are sent when the open block can close, or at the end. No fragment is dropped.
- Which call a fragment belongs to: its `index` when it has one, else its `id`, else the latest call.
  A fragment starts a new call when it brings an `id` other than the call's at that index (providers
  that reuse one index for every call), or a `name` while the call there already has a name and
  complete arguments (reused index, no ids). A call's block starts once its name is known.
- Ids: a fresh message id per answer and one unique, valid tool-use id per call (`proxy.core.convert.ids`).
- Text: `content` and `refusal` deltas (a refusal ends as `stop_reason: "refusal"`); whitespace-only
  text or reasoning opens no block (it is held, and sent with the first piece that is not
  whitespace), since a replayed whitespace-only block is rejected.
- Usage may come in any chunk (the last one seen wins, including Groq's `x_groq.usage` and
  Moonshot's inside `choices[0]`), so
  `message_delta` waits for `[DONE]`/`finish()`; counters follow `responses.anthropic_usage`.
- An in-band error (an `error` object, or `finish_reason: "error"`) ends the stream with an
  Anthropic `error` event, typed by the HTTP status it carries (`errors.inband_error`).
"""

from __future__ import annotations

import json

from proxy.core.convert.errors import inband_error
from proxy.core.convert.framing import (  # noqa: F401
    INCOMPLETE,
    Converter,
    loads_object,
    sse,
)
from proxy.core.convert.ids import ToolIds, new_message_id
from proxy.core.convert.requests import json_text, parse_arguments
from proxy.core.convert.responses import (
    USAGE_KEYS,
    anthropic_usage,
    content_text,
    matched_stop,
    reasoning_text,
    stop_reason,
    usage_of,
)
from proxy.core.convert.streams_openai import AnthropicToOpenAIStream  # noqa: F401 (re-exported)

_TEXT, _THINKING = "text", "thinking"


class _Tool:
    __slots__ = ("key", "pid", "name", "args", "sent", "closed", "late", "started", "by_name")

    def __init__(self, key: str, pid: str, name: str, by_name: bool) -> None:
        self.key, self.pid, self.name = key, pid, name
        self.args, self.late = "", ""
        self.sent = 0
        self.closed = self.started = False
        self.by_name = by_name  # told apart from the call before it by its name alone

    def complete(self) -> bool:
        """Whether the arguments so far are a whole JSON value."""
        try:
            json.loads(self.args)
        except ValueError:
            return False
        return True


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


class OpenAIToAnthropicStream(Converter):
    """OpenAI `chat.completion.chunk` SSE in, Anthropic Messages SSE out.

    `stop_sequences` are the request's (a vLLM `stop_reason` naming one becomes `stop_sequence`);
    `tool_names` maps the names the provider was given back to the client's (see
    `requests.provider_tool_name`)."""

    def __init__(
        self, model: str, stop_sequences: object = None, tool_names: dict[str, str] | None = None
    ) -> None:
        super().__init__()
        self.model = model
        self.stop_reason: str | None = None
        self.stop_sequence: str | None = None
        self.usage = anthropic_usage(None)
        self.events = 0
        self._stops = stop_sequences
        self._names = tool_names or {}
        self._id = new_message_id()
        self._ids = ToolIds()
        self._started = False
        self._finish: str | None = None
        self._matched: str | None = None
        self._refused = False
        self._blocks: list[dict] = []
        self._open: str | None = None
        self._pending: dict[str, str] = {}
        self._held: dict[str, str] = {}
        self._tools: dict[str, _Tool] = {}
        self._at_index: dict[int, _Tool] = {}
        self._by_id: dict[str, _Tool] = {}
        self._last: _Tool | None = None

    @property
    def message(self) -> dict:
        """The Anthropic message the stream has described so far, with full texts and tool inputs."""
        content = []
        for block in self._blocks:
            if block["type"] == "tool_use":
                tool = self._tools[block["key"]]
                block = {
                    "type": "tool_use",
                    "id": block["id"],
                    "name": block["name"],
                    "input": parse_arguments(tool.args + tool.late),
                }
            content.append(dict(block))
        return {
            "id": self._id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": content,
            "stop_reason": self.stop_reason,
            "stop_sequence": self.stop_sequence,
            "usage": dict(self.usage),
        }

    # -- upstream chunks ------------------------------------------------------------------------
    def _data(self, data: str) -> None:
        if data.strip() == "[DONE]":
            self._end()
        elif (obj := loads_object(data)) is not None:
            self._chunk(obj)

    def _answer_finished(self) -> bool:
        return self._finish is not None

    def _chunk(self, obj: dict) -> None:
        error = obj.get("error")
        if error:
            self._start_message()
            self._fail(*inband_error(error))
            return
        usage = usage_of(obj)
        if usage is not None:
            self.usage = anthropic_usage(usage)
        self._start_message()
        choices = obj.get("choices")
        for choice in choices if isinstance(choices, list) else ():
            if not isinstance(choice, dict) or choice.get("index", 0) not in (0, None):
                continue
            if (
                isinstance(choice.get("usage"), dict) and choice["usage"]
            ):  # Moonshot streams it here
                self.usage = anthropic_usage(choice["usage"])
            delta = choice.get("delta")
            if not isinstance(delta, dict):
                message = choice.get("message")
                delta = message if isinstance(message, dict) else {}
            if reasoning := reasoning_text(delta):
                self._piece(_THINKING, reasoning)
            if text := content_text(delta.get("content")):
                self._piece(_TEXT, text)
            if refusal := _str(delta.get("refusal")):
                self._refused = True
                self._piece(_TEXT, refusal)
            calls = delta.get("tool_calls")
            if isinstance(delta.get("function_call"), dict):  # the pre-tools shape: one call
                calls = [{"index": 0, "function": delta["function_call"]}]
            for n, call in enumerate(calls if isinstance(calls, list) else ()):
                if isinstance(call, dict):
                    self._tool_fragment(n, call)
            finish = choice.get("finish_reason")
            if finish == "error":
                self._fail("upstream reported an error (finish_reason: error)")
                return
            if isinstance(finish, str) and finish:
                self._finish = finish
                self._matched = matched_stop(choice, self._stops) or self._matched

    def _piece(self, kind: str, piece: str) -> None:
        """Text or reasoning: whitespace alone opens no block; it waits for the next real piece."""
        if self._open != kind and kind not in self._pending:
            if not piece.strip():
                self._held[kind] = self._held.get(kind, "") + piece
                return
            piece = self._held.pop(kind, "") + piece
        self._route(kind, piece)

    def _tool_fragment(self, position: int, call: dict) -> None:
        index = call.get("index")
        if not isinstance(index, int) or isinstance(index, bool):
            index = None
        pid = _str(call.get("id"))
        function = call.get("function")
        if not isinstance(function, dict):
            function = {}
        name = _str(function.get("name"))
        args = function.get("arguments")
        args = args if isinstance(args, str) else json_text(args) if isinstance(args, dict) else ""
        if index is not None:
            tool = self._at_index.get(index)
        elif pid:
            tool = self._by_id.get(pid)
        else:
            tool = self._last if self._last is not None else self._at_index.get(position)
        by_name = (
            tool is not None
            and not (pid and tool.pid and pid != tool.pid)
            and bool(name and tool.name)
            and tool.complete()
        )
        if tool is None or by_name or (pid and tool.pid and pid != tool.pid):
            tool = _Tool(f"tool:{len(self._tools)}", pid, name, by_name)
            self._tools[tool.key] = tool
        tool.pid = tool.pid or pid
        tool.name = tool.name or name
        self._at_index[position if index is None else index] = tool
        if tool.pid:
            self._by_id[tool.pid] = tool
        self._last = tool
        if tool.closed:
            tool.late += args  # after a complete JSON value: kept in .message, cannot be streamed
            return
        tool.args += args
        # (a name repeated in an empty trailing fragment is not a call: such a call waits for
        # its arguments before its block starts, and is dropped at the end without any)
        if tool.name and (tool.args or not tool.by_name):
            self._route(tool.key, "")

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
        return self._tools[self._open].complete()

    def _switch(self, key: str, piece: str) -> None:
        self._close_block()
        index = len(self._blocks)
        block: dict
        if key == _THINKING:
            block = {"type": "thinking", "thinking": "", "signature": ""}
        elif key == _TEXT:
            block = {"type": "text", "text": ""}
        else:
            tool = self._tools[key]
            tool.started = True
            block = {
                "type": "tool_use",
                "id": self._ids.anthropic_id(tool.pid),
                "name": self._names.get(tool.name, tool.name),
                "input": {},
            }
        self._emit(
            "content_block_start",
            {"type": "content_block_start", "index": index, "content_block": block},
        )
        self._blocks.append({**block, "key": key} if key.startswith("tool:") else block)
        self._open = key
        self._delta(key, piece)

    def _delta(self, key: str, piece: str) -> None:
        block, index = self._blocks[-1], len(self._blocks) - 1
        if key.startswith("tool:"):
            tool = self._tools[key]
            piece, tool.sent = tool.args[tool.sent :], len(tool.args)
            delta = {"type": "input_json_delta", "partial_json": piece}
        elif key == _THINKING:
            block["thinking"] += piece
            delta = {"type": "thinking_delta", "thinking": piece}
        else:
            block["text"] += piece
            delta = {"type": "text_delta", "text": piece}
        if piece:
            self._emit(
                "content_block_delta",
                {"type": "content_block_delta", "index": index, "delta": delta},
            )

    def _close_block(self) -> None:
        if self._open is None:
            return
        if self._open.startswith("tool:"):
            self._tools[self._open].closed = True
        self._emit(
            "content_block_stop", {"type": "content_block_stop", "index": len(self._blocks) - 1}
        )
        self._open = None

    # -- message framing ------------------------------------------------------------------------
    def _start_message(self) -> None:
        if self._started:
            return
        self._started = True
        usage = {key: self.usage[key] for key in USAGE_KEYS}
        usage["output_tokens"] = 0
        self._emit(
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": self._id,
                    "type": "message",
                    "role": "assistant",
                    "model": self.model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": usage,
                },
            },
        )
        self._emit("ping", {"type": "ping"})

    def _end(self) -> None:
        self._start_message()
        for tool in list(self._tools.values()):  # a call whose name never came still gets a block
            if tool.started or tool.key in self._pending or self._open == tool.key:
                continue
            if tool.by_name and not tool.args:
                del self._tools[tool.key]
            else:
                self._pending[tool.key] = ""
        while self._pending:
            key = next(iter(self._pending))
            self._switch(key, self._pending.pop(key))
        self._close_block()
        called = bool(self._tools)
        if self._matched and not called:
            self.stop_reason, self.stop_sequence = "stop_sequence", self._matched
        elif self._refused and not called:
            self.stop_reason = "refusal"
        else:
            self.stop_reason = stop_reason(self._finish, called_tools=called)
        self._emit(
            "message_delta",
            {
                "type": "message_delta",
                "usage": {key: self.usage[key] for key in USAGE_KEYS},
                "delta": {"stop_reason": self.stop_reason, "stop_sequence": self.stop_sequence},
            },
        )
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
        self._out.append(sse(name, obj))


def message_events(message: dict) -> bytes:
    """A whole Anthropic message as the SSE stream that carries it (message_start … message_stop)."""
    usage = message.get("usage") or {}
    start_usage = {key: usage.get(key) or 0 for key in USAGE_KEYS}
    start_usage["output_tokens"] = 0
    out = [
        sse(
            "message_start",
            {
                "type": "message_start",
                "message": {
                    **{k: v for k, v in message.items() if k not in ("content", "usage")},
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": start_usage,
                },
            },
        ),
        sse("ping", {"type": "ping"}),
    ]
    for index, block in enumerate(message.get("content") or []):
        kind = block.get("type")
        if kind == "tool_use":
            start = {**block, "input": {}}
            deltas = [
                {"type": "input_json_delta", "partial_json": json_text(block.get("input") or {})}
            ]
        elif kind == "thinking":
            start = {"type": "thinking", "thinking": "", "signature": ""}
            deltas = [{"type": "thinking_delta", "thinking": block.get("thinking", "")}]
            if block.get("signature"):
                deltas.append({"type": "signature_delta", "signature": block["signature"]})
        elif kind == "text":
            start = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": block.get("text", "")}]
        else:  # a block with no delta form: sent whole in its start
            start, deltas = block, []
        out.append(
            sse(
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": start},
            )
        )
        out += [
            sse("content_block_delta", {"type": "content_block_delta", "index": index, "delta": d})
            for d in deltas
        ]
        out.append(sse("content_block_stop", {"type": "content_block_stop", "index": index}))
    out.append(
        sse(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {
                    "stop_reason": message.get("stop_reason"),
                    "stop_sequence": message.get("stop_sequence"),
                },
                "usage": {key: usage.get(key) or 0 for key in USAGE_KEYS},
            },
        )
    )
    out.append(sse("message_stop", {"type": "message_stop"}))
    return b"".join(out)
