"""Awkward OpenAI Chat Completions streams that real providers send: pure builders, no I/O.

`harness.mock_openai_wire.chat_chunks()` writes the stream OpenAI itself sends. The builders here write
the shapes OpenAI-compatible providers send instead, byte for byte, one `bytes` per SSE write, each
ending in `data: [DONE]`, for scenarios to hand to `MockUpstream.set_responder()`:

- `reused_index_new_ids()`: every call at `index` 0, each call opened by a new `id` (Ollama sends
  `index: 0` for every call of a parallel batch: ollama/ollama#15457, vercel/ai#14277; the same
  merge bug was fixed as a named regression in langchain-ai/langchain#35281 and
  huggingface/smolagents#1958); optional text between the calls.
- `no_ids()`: no tool-call `id` at all, and no chunk `id` either (vLLM issue #18412, StepFun and
  NVIDIA-hosted Kimi per anomalyco/opencode#25925 and iOfficeAI/aionrs#99; chunks without `id`
  per the OpenAI-compatible servers that omit it).
- `parallel_interleaved()`: several calls opened first, then their argument fragments round robin,
  the argument text cut inside JSON strings and inside `\\uXXXX` escapes (`cut_arguments()`), as
  escaping servers (`json.dumps` defaults, ensure_ascii) tokenise them.
- `kimi_style_ids()`: ids `functions.NAME:N` (Kimi K2's tool parser in vLLM/SGLang:
  vllm-project/vllm#46344, BerriAI/litellm#34523), not valid Anthropic ids.
- `finish_stop_with_tool_calls()`: tool calls ended by `finish_reason: "stop"` (gpt-4o itself, per
  ollama/ollama#7963; Gemini's OpenAI layer, googleapis/python-genai#2868; LiteLLM #12862).
- `refusal()`: a streamed `delta.refusal` (OpenAI structured-output refusals), optionally with the
  finish in the same chunk as the last refusal piece.
- `text_answer()`: a plain text answer; every builder takes `usage=` for its final usage chunk,
  and `usage()` writes one with `prompt_tokens_details.cached_tokens` (OpenAI prompt caching:
  `prompt_tokens` counts the cached tokens too).

`Call(name, arguments, id)` is one tool call; arguments given as an object are serialised with
`ascii_json()` (non-ASCII as `\\uXXXX`), so the escapes are really on the wire.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterable
from itertools import zip_longest
from typing import Any, NamedTuple

from harness.mock_openai_wire import CREATED, DONE
from harness.mock_wire import compact_json

CHUNK_ID = "chatcmpl-shape-0001"
PIECES = 3  # argument fragments per call when no cuts are asked for
_ESCAPE_RE = re.compile(r"\\u[0-9a-fA-F]{4}")


class Call(NamedTuple):
    """One tool call: `arguments` is the JSON text the provider streams, or an object (ascii_json)."""

    name: str
    arguments: Any
    id: str | None = None

    def arguments_json(self) -> str:
        return self.arguments if isinstance(self.arguments, str) else ascii_json(self.arguments)


def ascii_json(obj: Any) -> str:
    """Compact JSON with every non-ASCII character as a `\\uXXXX` escape (surrogate pairs above U+FFFF)."""
    return json.dumps(obj, ensure_ascii=True, separators=(",", ":"))


def usage(prompt_tokens: int, completion_tokens: int, cached_tokens: int | None = None) -> dict[str, Any]:
    """OpenAI's usage object; with `cached_tokens`, the `*_details` OpenAI adds (cached ⊂ prompt)."""
    out: dict[str, Any] = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                           "total_tokens": prompt_tokens + completion_tokens}
    if cached_tokens is not None:
        out["prompt_tokens_details"] = {"cached_tokens": cached_tokens, "audio_tokens": 0}
        out["completion_tokens_details"] = {"reasoning_tokens": 0, "audio_tokens": 0,
                                            "accepted_prediction_tokens": 0,
                                            "rejected_prediction_tokens": 0}
    return out


def cut_positions(arguments: str) -> list[int]:
    """Where `cut_arguments()` cuts: after the backslash and mid-hex of every `\\uXXXX` escape, and
    in the middle of every string of 4+ characters (keys and values), between two characters."""
    cuts: set[int] = set()
    i, units = 0, None  # units: where each character of the current string starts
    while i < len(arguments):
        ch = arguments[i]
        if units is None:
            if ch == '"':
                units = []
            i += 1
        elif ch == '"':
            if len(units) >= 4:
                cuts.add(units[len(units) // 2])
            units = None
            i += 1
        else:
            units.append(i)
            if _ESCAPE_RE.match(arguments, i):
                cuts.update((i + 1, i + 4))
                i += 6
            else:
                i += 2 if ch == "\\" else 1
    return sorted(p for p in cuts if 0 < p < len(arguments))


def cut_arguments(arguments: str) -> list[str]:
    """`arguments` cut at `cut_positions()`: the pieces join back to it, none is empty."""
    bounds = [0, *cut_positions(arguments), len(arguments)]
    return [arguments[a:b] for a, b in zip(bounds, bounds[1:])]


def even_pieces(arguments: str, pieces: int = PIECES) -> list[str]:
    """`arguments` in `pieces` equal runs of characters (fewer for short text)."""
    pieces = max(1, min(pieces, len(arguments)))
    bounds = [i * len(arguments) // pieces for i in range(pieces + 1)]
    return [arguments[a:b] for a, b in zip(bounds, bounds[1:])]


class _Stream:
    """The chunks of one streamed answer: `head` on each, `usage: null` until the usage chunk."""

    def __init__(self, model: str, chunk_id: str | None = CHUNK_ID, with_usage: bool = True) -> None:
        self.head: dict[str, Any] = {"object": "chat.completion.chunk", "created": CREATED,
                                     "model": model}
        if chunk_id is not None:
            self.head = {"id": chunk_id, **self.head}
        self.tail = {"usage": None} if with_usage else {}
        self.out: list[bytes] = []

    def chunk(self, delta: dict[str, Any], finish: str | None = None) -> None:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        self.out.append(_data({**self.head, "choices": [choice], **self.tail}))

    def end(self, finish: str | None, usage_obj: dict[str, Any] | None) -> list[bytes]:
        if finish is not None:
            self.chunk({}, finish)
        if usage_obj is not None:
            self.out.append(_data({**self.head, "choices": [], "usage": usage_obj}))
        self.out.append(DONE)
        return self.out


def _data(obj: Any) -> bytes:
    return f"data: {compact_json(obj)}\n\n".encode()


def _opener(index: int | None, call: Call, with_id: bool = True) -> dict[str, Any]:
    frag: dict[str, Any] = {} if index is None else {"index": index}
    if with_id and call.id is not None:
        frag.update(id=call.id, type="function")
    frag["function"] = {"name": call.name, "arguments": ""}
    return frag


def _piece(index: int | None, text: str) -> dict[str, Any]:
    frag: dict[str, Any] = {} if index is None else {"index": index}
    frag["function"] = {"arguments": text}
    return frag


def _tool_chunks(stream: _Stream, frags: Iterable[dict[str, Any]]) -> None:
    for frag in frags:
        stream.chunk({"tool_calls": [frag]})


def text_answer(model: str, text: str, *, usage_obj: dict[str, Any] | None = None,
                chunk_id: str | None = CHUNK_ID, pieces: int = PIECES) -> list[bytes]:
    """A plain streamed text answer, `finish_reason: "stop"`."""
    stream = _Stream(model, chunk_id)
    stream.chunk({"role": "assistant", "content": ""})
    for piece in even_pieces(text, pieces):
        stream.chunk({"content": piece})
    return stream.end("stop", usage_obj)


def _sequential(model: str, calls: list[Call], *, index_of, with_ids: bool, chunk_id: str | None,
                finish: str, usage_obj: dict[str, Any] | None, between: list[str] | None = None,
                pieces=even_pieces) -> list[bytes]:
    stream = _Stream(model, chunk_id)
    stream.chunk({"role": "assistant", "content": None})
    for i, call in enumerate(calls):
        if between and i < len(between) and between[i]:
            stream.chunk({"content": between[i]})
        index = index_of(i)
        _tool_chunks(stream, [_opener(index, call, with_ids),
                              *(_piece(index, p) for p in pieces(call.arguments_json()))])
    return stream.end(finish, usage_obj)


def reused_index_new_ids(model: str, calls: list[Call], *, between: list[str] | None = None,
                         usage_obj: dict[str, Any] | None = None) -> list[bytes]:
    """Each call at `index` 0, opened by its own new `id`; `between[i]` is text sent before call i."""
    assert all(c.id for c in calls) and len({c.id for c in calls}) == len(calls), "distinct ids"
    return _sequential(model, calls, index_of=lambda i: 0, with_ids=True, chunk_id=CHUNK_ID,
                       finish="tool_calls", usage_obj=usage_obj, between=between)


def no_ids(model: str, calls: list[Call], *, usage_obj: dict[str, Any] | None = None) -> list[bytes]:
    """Calls at their own `index` with no `id` on any fragment, and chunks with no `id` either."""
    return _sequential(model, [c._replace(id=None) for c in calls], index_of=lambda i: i,
                       with_ids=False, chunk_id=None, finish="tool_calls", usage_obj=usage_obj)


def kimi_style_ids(model: str, calls: list[Call], *,
                   usage_obj: dict[str, Any] | None = None) -> list[bytes]:
    """Calls with Kimi K2's ids `functions.NAME:N` (`N` = the call's position in the answer)."""
    calls = [c._replace(id=f"functions.{c.name}:{i}") for i, c in enumerate(calls)]
    return _sequential(model, calls, index_of=lambda i: i, with_ids=True, chunk_id=CHUNK_ID,
                       finish="tool_calls", usage_obj=usage_obj)


def finish_stop_with_tool_calls(model: str, calls: list[Call], *,
                                usage_obj: dict[str, Any] | None = None) -> list[bytes]:
    """Ordinary tool calls, ended by `finish_reason: "stop"` instead of `"tool_calls"`."""
    return _sequential(model, calls, index_of=lambda i: i, with_ids=True, chunk_id=CHUNK_ID,
                       finish="stop", usage_obj=usage_obj)


def tool_calls(model: str, calls: list[Call], *, usage_obj: dict[str, Any] | None = None,
               finish: str = "tool_calls") -> list[bytes]:
    """Well-formed tool calls, one after the other (the baseline the awkward shapes differ from)."""
    return _sequential(model, calls, index_of=lambda i: i, with_ids=True, chunk_id=CHUNK_ID,
                       finish=finish, usage_obj=usage_obj)


def parallel_interleaved(model: str, calls: list[Call], *,
                         usage_obj: dict[str, Any] | None = None) -> list[bytes]:
    """All calls opened first (own index and id), then their argument fragments round robin
    (call 0, call 1, …), each call's text cut inside strings and `\\uXXXX` escapes."""
    stream = _Stream(model, CHUNK_ID)
    stream.chunk({"role": "assistant", "content": None})
    _tool_chunks(stream, [_opener(i, call) for i, call in enumerate(calls)])
    rows = zip_longest(*(cut_arguments(c.arguments_json()) for c in calls))
    for row in rows:
        _tool_chunks(stream, [_piece(i, p) for i, p in enumerate(row) if p is not None])
    return stream.end("tool_calls", usage_obj)


def refusal(model: str, text: str, *, finish_in_last: bool = False, pieces: int = PIECES,
            usage_obj: dict[str, Any] | None = None) -> list[bytes]:
    """A refusal streamed as `delta.refusal` (content null), `finish_reason: "stop"`; with
    `finish_in_last` the finish rides on the last refusal piece's chunk."""
    stream = _Stream(model, CHUNK_ID)
    stream.chunk({"role": "assistant", "content": None, "refusal": ""})
    parts = even_pieces(text, pieces)
    for i, piece in enumerate(parts):
        last = i == len(parts) - 1
        stream.chunk({"refusal": piece}, "stop" if finish_in_last and last else None)
    return stream.end(None if finish_in_last else "stop", usage_obj)


def chunk_objects(chunks: list[bytes]) -> list[dict[str, Any]]:
    """The JSON of each `data:` chunk before `[DONE]` (for tests reading a stream back)."""
    out = []
    for chunk in chunks:
        if chunk == DONE:
            break
        assert chunk.startswith(b"data: ") and chunk.endswith(b"\n\n"), chunk
        out.append(json.loads(chunk[len(b"data: "):]))
    return out


def joined_arguments(chunks: list[bytes]) -> list[tuple[str | None, str | None, str]]:
    """(id, name, joined arguments) per call, by the contract's framing rule (a new id, or a new
    name after complete arguments, at the same key opens a new call)."""
    calls: list[list[Any]] = []
    current: dict[Any, int] = {}
    for obj in chunk_objects(chunks):
        for choice in obj.get("choices") or []:
            for pos, frag in enumerate((choice.get("delta") or {}).get("tool_calls") or []):
                key = frag.get("index", pos)
                fn = frag.get("function") or {}
                at = current.get(key)
                new = at is None or (frag.get("id") and frag["id"] != calls[at][0]) or (
                    fn.get("name") and calls[at][1] and _complete(calls[at][2]))
                if new:
                    current[key] = len(calls)
                    calls.append([frag.get("id"), fn.get("name"), ""])
                calls[current[key]][2] += fn.get("arguments") or ""
    return [tuple(c) for c in calls]


def _complete(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True
