"""The OpenAI Chat Completions wire format as the mock upstream writes it: pure builders, no I/O.

`chat_completion_json()` is a non-streaming reply; `chat_chunks()` is the exact SSE byte sequence of
a streaming one, one bytes object per write:

    data: {chunk: delta {"role":"assistant","content":""}}
    data: {chunk: delta {"reasoning_content": piece}}          one per reasoning piece
    data: {chunk: delta {"content": piece}}                    one per content delta
    data: {chunk: delta {"tool_calls":[{index,id,type,function:{name,arguments:""}}]}}   per call
    data: {chunk: delta {"tool_calls":[{index,function:{arguments: piece}}]}}  pieces, round robin
    data: {chunk: delta {}, finish_reason "stop" | "tool_calls"}
    data: {chunk: choices [], usage}                           only with include_usage
    data: [DONE]

Argument pieces of parallel calls are interleaved (call 0, call 1, call 0, ...), as real providers
send them. With include_usage every chunk before the usage one carries `"usage": null`, as OpenAI's
do. Ids and `created` derive from the inputs, so a test can rebuild the bytes a mock sent.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable
from itertools import zip_longest
from typing import Any, NamedTuple

from harness.mock_wire import compact_json, default_deltas, split_text

CREATED = 1_700_000_000  # a fixed `created`, so the bytes are reproducible
ARG_PIECES = 3  # argument fragments per tool call (fewer when the arguments are shorter)
DONE = b"data: [DONE]\n\n"


class ToolCall(NamedTuple):
    """A tool call the mock makes: `arguments` is a JSON string, or an object serialized compactly."""

    name: str
    arguments: Any

    def arguments_json(self) -> str:
        return self.arguments if isinstance(self.arguments, str) else compact_json(self.arguments)


def _calls(tool_calls: Iterable[Any] | None) -> list[ToolCall]:
    return [ToolCall(*call) for call in tool_calls or ()]


def chat_completion_id(model: str, text: str, prompt_tokens: int,
                       tool_calls: Iterable[Any] | None = None, reasoning: str | None = None) -> str:
    """A deterministic `chatcmpl-mock-…` id."""
    calls = [(c.name, c.arguments_json()) for c in _calls(tool_calls)]
    seed = compact_json([model, text, prompt_tokens, calls, reasoning])
    return f"chatcmpl-mock-{hashlib.sha256(seed.encode()).hexdigest()[:24]}"


def tool_call_id(msg_id: str, index: int) -> str:
    """A deterministic `call_mock_…` id for the `index`th call of reply `msg_id`."""
    seed = f"{msg_id}\0{index}".encode()
    return f"call_mock_{hashlib.sha256(seed).hexdigest()[:24]}"


def argument_pieces(arguments: str) -> list[str]:
    """A call's arguments as the fragments the stream sends (they join back to `arguments`)."""
    return split_text(arguments, min(ARG_PIECES, len(arguments)))


def content_pieces(text: str, deltas: int) -> list[str]:
    """The content deltas: none for an empty text (a tool-call-only reply)."""
    return split_text(text, deltas) if text else []


def completion_tokens(text: str, deltas: int, tool_calls: Iterable[Any] | None = None,
                      reasoning: str | None = None) -> int:
    """The completion token count the mock reports: one per streamed fragment, at least one."""
    reasoning_pieces = len(split_text(reasoning, default_deltas(reasoning))) if reasoning else 0
    args = sum(len(argument_pieces(c.arguments_json())) for c in _calls(tool_calls))
    return max(1, reasoning_pieces + len(content_pieces(text, deltas)) + args)


def _data(obj: Any) -> bytes:
    return f"data: {compact_json(obj)}\n\n".encode()


def _usage(prompt_tokens: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion,
            "total_tokens": prompt_tokens + completion}


def chat_completion_json(model: str, text: str, prompt_tokens: int, completion_tokens: int,
                         tool_calls: Iterable[Any] | None = None, reasoning: str | None = None,
                         msg_id: str | None = None) -> dict[str, Any]:
    """A non-streaming Chat Completions reply (`content` is null for a tool-call-only reply)."""
    calls = _calls(tool_calls)
    msg_id = msg_id or chat_completion_id(model, text, prompt_tokens, calls, reasoning)
    message: dict[str, Any] = {"role": "assistant", "content": text or (None if calls else "")}
    if reasoning:
        message["reasoning_content"] = reasoning
    if calls:
        message["tool_calls"] = [
            {"id": tool_call_id(msg_id, i), "type": "function",
             "function": {"name": call.name, "arguments": call.arguments_json()}}
            for i, call in enumerate(calls)]
    return {
        "id": msg_id, "object": "chat.completion", "created": CREATED, "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None,
                     "finish_reason": "tool_calls" if calls else "stop"}],
        "usage": _usage(prompt_tokens, completion_tokens),
    }


def chat_chunks(model: str, text: str, deltas: int, prompt_tokens: int, include_usage: bool,
                tool_calls: Iterable[Any] | None = None, reasoning: str | None = None,
                msg_id: str | None = None) -> list[bytes]:
    """The full Chat Completions SSE stream for one reply, one `bytes` per chunk, ending in [DONE]."""
    calls = _calls(tool_calls)
    msg_id = msg_id or chat_completion_id(model, text, prompt_tokens, calls, reasoning)
    head = {"id": msg_id, "object": "chat.completion.chunk", "created": CREATED, "model": model}
    tail = {"usage": None} if include_usage else {}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return _data({**head, "choices": [choice], **tail})

    def fragment(index: int, function: dict[str, str], **first: str) -> bytes:
        return chunk({"tool_calls": [{"index": index, **first, "function": function}]})

    out = [chunk({"role": "assistant", "content": ""})]
    if reasoning:
        out += [chunk({"reasoning_content": piece})
                for piece in split_text(reasoning, default_deltas(reasoning))]
    out += [chunk({"content": piece}) for piece in content_pieces(text, deltas)]
    out += [fragment(i, {"name": call.name, "arguments": ""}, id=tool_call_id(msg_id, i),
                     type="function") for i, call in enumerate(calls)]
    pieces = [argument_pieces(call.arguments_json()) for call in calls]
    for row in zip_longest(*pieces):  # round robin: call 0, call 1, ..., call 0, call 1, ...
        out += [fragment(i, {"arguments": piece}) for i, piece in enumerate(row) if piece is not None]
    out.append(chunk({}, "tool_calls" if calls else "stop"))
    if include_usage:
        completion = completion_tokens(text, deltas, calls, reasoning)
        out.append(_data({**head, "choices": [], "usage": _usage(prompt_tokens, completion)}))
    out.append(DONE)
    return out
