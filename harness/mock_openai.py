"""The OpenAI Chat Completions side of the mock upstream: what to reply to a request (pure).

`MockUpstream` answers any `POST …/chat/completions` (e.g. `/v1/chat/completions`, or GLM's
`/api/paas/v4/chat/completions`) with `openai_reply()`; recording, faults and the byte-exact writes
are shared with the Anthropic side. Reply rules, on the OpenAI message shapes:

- the last message has role `tool` → "tool said: <its content>";
- the last user message says "Call tool NAME with {JSON}" (several joined by " and also call tool
  …") and the request has `tools` → those tool calls, finish_reason "tool_calls";
- else "Reply with exactly: X and nothing else." → X, "Generate N lines of numbered text" → N
  lines (the rule `mock_wire.prompt_reply` shares with the Anthropic side), else a greeting;
- `reasoning_effort` in the request → reasoning_content "Thinking about it." before the text.

A scripted text replaces all of that with a plain text reply.
"""
from __future__ import annotations

import json
import re
from typing import Any

from harness.mock_faults import SPLIT_UTF8_SUFFIX
from harness.mock_openai_wire import (
    ToolCall,
    chat_chunks,
    chat_completion_json,
    completion_tokens,
)
from harness.mock_wire import content_text, default_deltas, last_user_text, reply_text

REASONING = "Thinking about it."
_CALL_RE = re.compile(r"\bcall tool\s+([A-Za-z_][\w.-]*)\s+with\s+", re.IGNORECASE)
_ALSO_RE = re.compile(r"\s+and also\s+(?=call tool\s)", re.IGNORECASE)


def tool_calls_in(prompt: str) -> list[ToolCall]:
    """The calls a prompt asks for: `Call tool NAME with {JSON}`, chained by " and also call tool"."""
    start = _CALL_RE.search(prompt)
    if not start:
        return []
    calls = []
    for part in _ALSO_RE.split(prompt[start.start():]):
        match = _CALL_RE.match(part)
        if not match:
            break
        try:
            arguments, _ = json.JSONDecoder().raw_decode(part, match.end())
        except ValueError:
            break
        calls.append(ToolCall(match.group(1), arguments))
    return calls


def reply_parts(payload: dict[str, Any], name: str) -> tuple[str, list[ToolCall], str | None]:
    """(text, tool calls, reasoning) for an OpenAI request, by the rules in the module docstring."""
    reasoning = REASONING if payload.get("reasoning_effort") is not None else None
    messages = payload.get("messages") or []
    last = messages[-1] if messages else None
    if isinstance(last, dict) and last.get("role") == "tool":
        return f"tool said: {content_text(last.get('content'))}", [], reasoning
    prompt = last_user_text(payload)
    calls = tool_calls_in(prompt) if prompt and payload.get("tools") else []
    if calls:
        return "", calls, reasoning
    return reply_text(payload, name), [], reasoning


def openai_reply(payload: dict[str, Any], name: str, scripted_text: str | None, deltas: int | None,
                 prompt_tokens: int, split_utf8: bool = False) -> list[bytes] | dict[str, Any]:
    """The reply to a Chat Completions request: its SSE chunks when it streams, else its JSON."""
    if scripted_text is not None:
        text, calls, reasoning = scripted_text, [], None
    else:
        text, calls, reasoning = reply_parts(payload, name)
    if split_utf8 and text and text.isascii():
        text += SPLIT_UTF8_SUFFIX
    deltas = deltas if deltas is not None else default_deltas(text)
    model = str(payload.get("model") or "mock-model")
    if payload.get("stream") is True:
        options = payload.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        return chat_chunks(model, text, deltas, prompt_tokens, include_usage, calls, reasoning)
    completion = completion_tokens(text, deltas, calls, reasoning)
    return chat_completion_json(model, text, prompt_tokens, completion, calls, reasoning)
