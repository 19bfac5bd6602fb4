"""The Anthropic Messages wire format as the mock upstream writes it: pure builders, no I/O.

`message_json()` is a non-streaming reply; `sse_events()` is the exact byte sequence of a streaming
one (one bytes object per event, in the real grammar: message_start, content_block_start, ping,
content_block_delta…, content_block_stop, message_delta, message_stop). Ids derive from the inputs,
so a test can rebuild the bytes a mock sent and compare them with what a client received.
"""
from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from proxy.core.jsontext import escape_surrogates

FILLER = " x"
_REPLY_RE = re.compile(r"Reply with exactly: (.*?) and nothing else", re.DOTALL)
_LINES_RE = re.compile(r"Generate (\d{1,4}) lines of numbered text", re.IGNORECASE)

def compact_json(obj: Any) -> str:
    """Compact JSON text that UTF-8 can encode: a lone surrogate a request carried (and a reply
    echoes) is written back as its escape, as a real provider's JSON encoder writes it."""
    return escape_surrogates(json.dumps(obj, ensure_ascii=False, separators=(",", ":")))


def sse_event(name: str, data: Any) -> bytes:
    """One SSE event, `event: NAME\\ndata: JSON\\n\\n`."""
    return f"event: {name}\ndata: {compact_json(data)}\n\n".encode()


def mock_message_id(model: str, text: str, input_tokens: int) -> str:
    """A deterministic `msg_mock_…` id, so expected bytes can be rebuilt from the inputs."""
    digest = hashlib.sha256(f"{model}\0{text}\0{input_tokens}".encode("utf-8", "surrogatepass")).hexdigest()
    return f"msg_mock_{digest[:24]}"


def split_text(text: str, deltas: int) -> list[str]:
    """`text` in `deltas` pieces: by word when counts match, else by characters, then filler."""
    if deltas <= 0:
        return []
    words = re.findall(r"\s*\S+", text)
    if words and text[len("".join(words)):]:
        words[-1] += text[len("".join(words)):]
    if len(words) == deltas:
        return words
    if deltas > len(text):
        return list(text) + [FILLER] * (deltas - len(text))
    cuts = [i * len(text) // deltas for i in range(deltas + 1)]
    return [text[a:b] for a, b in zip(cuts, cuts[1:], strict=False)]


def default_deltas(text: str) -> int:
    """One delta per word (at least one)."""
    return max(1, len(re.findall(r"\S+", text)))


def message_json(model: str, text: str, input_tokens: int, output_tokens: int,
                 msg_id: str | None = None,
                 thinking: tuple[str, str] | None = None) -> dict[str, Any]:
    """A non-streaming Anthropic Messages reply (`thinking` = (text, signature) puts a thinking
    block first, as extended thinking does)."""
    content: list[dict[str, Any]] = [{"type": "text", "text": text}]
    if thinking:
        content.insert(0, {"type": "thinking", "thinking": thinking[0], "signature": thinking[1]})
    return {
        "id": msg_id or mock_message_id(model, text, input_tokens),
        "type": "message", "role": "assistant", "model": model,
        "content": content,
        "stop_reason": "end_turn", "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens,
                  "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
    }


def sse_events(model: str, text: str, deltas: int, input_tokens: int,
               msg_id: str | None = None, thinking: tuple[str, str] | None = None) -> list[bytes]:
    """The full Anthropic SSE stream for one text reply, one `bytes` per event (with `thinking` =
    (text, signature), a thinking block with its signature_delta comes first, at index 0)."""
    message = {
        "id": msg_id or mock_message_id(model, text, input_tokens),
        "type": "message", "role": "assistant", "model": model, "content": [],
        "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "cache_creation_input_tokens": 0,
                  "cache_read_input_tokens": 0, "output_tokens": 1},
    }
    pieces = split_text(text, deltas)
    first = 1 if thinking else 0
    thought = [
        sse_event("content_block_start", {"type": "content_block_start", "index": 0, "content_block":
                                          {"type": "thinking", "thinking": "", "signature": ""}}),
        sse_event("content_block_delta", {"type": "content_block_delta", "index": 0, "delta":
                                          {"type": "thinking_delta", "thinking": thinking[0]}}),
        sse_event("content_block_delta", {"type": "content_block_delta", "index": 0, "delta":
                                          {"type": "signature_delta", "signature": thinking[1]}}),
        sse_event("content_block_stop", {"type": "content_block_stop", "index": 0}),
    ] if thinking else []
    return [
        sse_event("message_start", {"type": "message_start", "message": message}),
        *thought,
        sse_event("content_block_start", {"type": "content_block_start", "index": first,
                                          "content_block": {"type": "text", "text": ""}}),
        sse_event("ping", {"type": "ping"}),
        *(sse_event("content_block_delta", {"type": "content_block_delta", "index": first,
                                            "delta": {"type": "text_delta", "text": piece}})
          for piece in pieces),
        sse_event("content_block_stop", {"type": "content_block_stop", "index": first}),
        sse_event("message_delta", {"type": "message_delta",
                                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                    "usage": {"output_tokens": len(pieces)}}),
        sse_event("message_stop", {"type": "message_stop"}),
    ]


def content_text(content: Any) -> str:
    """A message's text: the string itself, or its `{"type": "text"}` blocks joined by newlines.

    Anthropic and OpenAI user messages share these two shapes."""
    if isinstance(content, list):
        return "\n".join(str(block.get("text", "")) for block in content
                         if isinstance(block, dict) and block.get("type") == "text")
    return content if isinstance(content, str) else ""


def last_user_text(payload: dict[str, Any]) -> str | None:
    """The text of the last `user` message in `payload["messages"]`, or None when there is none."""
    for message in reversed(payload.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            return content_text(message.get("content"))
    return None


def prompt_reply(prompt: str) -> str | None:
    """The text rule both mocks share: "Reply with exactly: X and nothing else." → X;
    "Generate N lines of numbered text" → N numbered lines; anything else → None."""
    match = _REPLY_RE.search(prompt)
    if match:
        return match.group(1)
    lines = _LINES_RE.search(prompt)
    if lines:
        return "\n".join(f"{i}. This is line number {i} of the numbered text."
                         for i in range(1, int(lines.group(1)) + 1))
    return None


def reply_text(payload: dict[str, Any], name: str) -> str:
    """The reply to the last user message.

    "Reply with exactly: X and nothing else." → X; "Generate N lines of numbered text" → N numbered
    lines (a long stream, as the operators' SSE check asks for); anything else → a greeting.
    """
    prompt = last_user_text(payload)
    text = prompt_reply(prompt) if prompt is not None else None
    return text if text is not None else f"Hello from mock {name}"


def thinking_signature(name: str, text: str) -> str:
    """A signature only the mock called `name` issues (as each real provider signs its own)."""
    return f"sig-{name}-" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:24]


def thinking_enabled(payload: dict[str, Any]) -> bool:
    thinking = payload.get("thinking")
    return isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive")


def foreign_thinking(payload: dict[str, Any], name: str) -> str | None:
    """The rejection a real service gives for a replayed thinking block it did not sign, or None."""
    for i, message in enumerate(payload.get("messages") or []):
        if not isinstance(message, dict) or message.get("role") != "assistant" \
                or not isinstance(message.get("content"), list):
            continue
        for j, block in enumerate(message["content"]):
            if not isinstance(block, dict):
                continue
            if block.get("type") == "thinking" and \
                    not str(block.get("signature", "")).startswith(f"sig-{name}-"):
                return f"messages.{i}.content.{j}: Invalid `signature` in `thinking` block"
            if block.get("type") == "redacted_thinking" and \
                    not str(block.get("data", "")).startswith(f"sig-{name}-"):
                return f"messages.{i}.content.{j}: Invalid `data` in `redacted_thinking` block"
    return None


COMMENT = b": ping"  # an SSE comment line: a client ignores it, a relay passes it on


def wire_variant(events: list[bytes], crlf: bool = False, comments: bool = False) -> list[bytes]:
    """The same stream in the other legal spellings of the SSE grammar: `crlf` ends every line with
    CR LF, `comments` adds a comment event (`: ping`) after the first event and before the last, as
    real providers and the proxies in front of them do. The events' meaning is unchanged."""
    out = list(events)
    if comments and out:
        out[1:1] = [COMMENT + b"\n\n"]
        out[-1:-1] = [COMMENT + b"\n\n"]
    if crlf:
        out = [e.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") for e in out]
    return out


def ends_mid_utf8(chunk: bytes) -> bool:
    """Whether `chunk` ends inside a multi-byte UTF-8 sequence (its next write completes it)."""
    for back in range(1, min(4, len(chunk)) + 1):
        byte = chunk[-back]
        if byte < 0x80:
            return False
        if byte >= 0xC0:  # the lead byte: how many bytes its sequence needs
            need = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return back < need
    return False
