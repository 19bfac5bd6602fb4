"""Whole (non-streamed) responses translated between OpenAI Chat Completions and Anthropic Messages.

Also owns the small vocabularies both the response and the stream converters share: stop reasons,
usage counters and message ids.

- OpenAI `finish_reason` → Anthropic `stop_reason`: stop/eos → end_turn, length → max_tokens,
  tool_calls / function_call / tool_use → tool_use (also when a provider says `stop` but did call
  tools), content_filter / sensitive (Z.AI) → refusal, as does a `refusal` text. A vLLM
  `stop_reason` naming one of the request's stop sequences gives `stop_sequence`; other providers
  cannot tell a matched stop string from a natural end.
- Anthropic content order is thinking (from `reasoning_content`, signature ""), text, tool_use; a
  text or thinking that is only whitespace gives no block (Anthropic rejects such a block replayed).
- Ids: a fresh message id per answer, one valid unique tool-use id per call (`proxy.core.convert.ids`);
  tool names the provider was given in a shortened form are restored (`tool_names`).
- Usage: OpenAI's `prompt_tokens` includes cached tokens, Anthropic's `input_tokens` does not:
  `input_tokens = prompt_tokens − cached`, `cache_read_input_tokens = cached`, where cached is
  `prompt_tokens_details.cached_tokens` (OpenAI, Z.AI, OpenRouter), `input_tokens_details.
  cached_tokens` (Responses-style names), `prompt_cache_hit_tokens` (DeepSeek) or `cached_tokens`
  (Moonshot). Anthropic → OpenAI: `prompt_tokens` counts all input (plain + cache read + cache
  creation), and `prompt_tokens_details.cached_tokens` the cache reads.
"""

from __future__ import annotations

from proxy.core.convert.errors import ConversionError
from proxy.core.convert.ids import ToolIds, new_message_id
from proxy.core.convert.requests import json_text, parse_arguments

_STOP_REASONS = {
    "stop": "end_turn",
    "eos": "end_turn",
    "end_turn": "end_turn",
    "length": "max_tokens",
    "max_tokens": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "tool_use": "tool_use",
    "content_filter": "refusal",
    "sensitive": "refusal",
    "refusal": "refusal",
}
_KEEPS_ITS_REASON = frozenset({"length", "max_tokens", "content_filter", "sensitive", "refusal"})
USAGE_KEYS = (
    "input_tokens",
    "output_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
)
_FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def stop_reason(finish_reason: str | None, called_tools: bool = False) -> str:
    """The Anthropic `stop_reason` for an OpenAI `finish_reason`."""
    if not isinstance(finish_reason, str):
        finish_reason = None
    if called_tools and finish_reason not in _KEEPS_ITS_REASON:
        return "tool_use"
    return _STOP_REASONS.get(finish_reason or "stop", "end_turn")


def finish_reason(stop: str | None) -> str:
    """The OpenAI `finish_reason` for an Anthropic `stop_reason`."""
    return _FINISH_REASONS.get(stop or "end_turn", "stop")


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def anthropic_usage(usage: object) -> dict:
    """Anthropic `usage` from an OpenAI `usage` object (see the module doc; missing counters are 0)."""
    usage = usage if isinstance(usage, dict) else {}
    if "prompt_tokens" not in usage and "cache_read_input_tokens" in usage:  # already Anthropic's
        return {key: _count(usage.get(key)) for key in USAGE_KEYS}
    prompt = _count(usage.get("prompt_tokens", usage.get("input_tokens")))
    completion = _count(usage.get("completion_tokens", usage.get("output_tokens")))
    cached = 0
    for details in ("prompt_tokens_details", "input_tokens_details"):
        inner = usage.get(details)
        if isinstance(inner, dict) and _count(inner.get("cached_tokens")):
            cached = _count(inner["cached_tokens"])
            break
    else:
        cached = _count(usage.get("prompt_cache_hit_tokens")) or _count(usage.get("cached_tokens"))
    cached = min(cached, prompt)
    return {
        "input_tokens": prompt - cached,
        "output_tokens": completion,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
    }


def usage_of(obj: dict) -> dict | None:
    """The usage object a chunk or body carries (also Groq's `x_groq.usage`), or None."""
    usage = obj.get("usage")
    if isinstance(usage, dict) and usage:
        return usage
    extra = obj.get("x_groq")
    if isinstance(extra, dict) and isinstance(extra.get("usage"), dict):
        return extra["usage"]
    return None


def matched_stop(choice: dict, stop_sequences: object) -> str | None:
    """The request's stop sequence a vLLM-style `choices[].stop_reason` names, if any."""
    matched = choice.get("stop_reason")
    if not isinstance(matched, str) or not matched:
        return None
    if isinstance(stop_sequences, str):
        stop_sequences = [stop_sequences]
    return matched if isinstance(stop_sequences, list) and matched in stop_sequences else None


def openai_usage(usage: object) -> dict:
    """OpenAI `usage` from an Anthropic `usage` object (input includes cache reads and writes)."""
    usage = usage if isinstance(usage, dict) else {}
    cached = usage.get("cache_read_input_tokens") or 0
    prompt = (
        (usage.get("input_tokens") or 0) + cached + (usage.get("cache_creation_input_tokens") or 0)
    )
    completion = usage.get("output_tokens") or 0
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
    }


def completion_id(anthropic_id: object) -> str:
    """An OpenAI `chatcmpl-…` id derived from an Anthropic message id."""
    raw = str(anthropic_id or "")
    return f"chatcmpl-{raw[4:] if raw.startswith('msg_') else raw or 'converted'}"


def reasoning_text(message: dict) -> str:
    """The reasoning a provider put on a message or delta (`reasoning_content`, else `reasoning`)."""
    value = message.get("reasoning_content") or message.get("reasoning")
    return value if isinstance(value, str) else ""


def content_text(content: object) -> str:
    """The text of a message's or delta's `content`: a string, or its text parts joined."""
    if isinstance(content, list):
        return "".join(
            p["text"]
            for p in content
            if isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
        )
    return content if isinstance(content, str) else ""


def openai_to_anthropic_response(
    body: dict, model: str, stop_sequences: object = None, tool_names: dict[str, str] | None = None
) -> dict:
    """A Chat Completions response as an Anthropic Message answered by `model` (see the module doc)."""
    choices = body.get("choices") if isinstance(body, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise ConversionError("choices", "expected a non-empty list")
    message = choices[0].get("message")
    if not isinstance(message, dict):
        raise ConversionError("choices[0].message", "expected an object")
    content: list[dict] = []
    thinking = reasoning_text(message)
    if thinking.strip():
        content.append({"type": "thinking", "thinking": thinking, "signature": ""})
    refusal = message.get("refusal")
    if not isinstance(refusal, str):
        refusal = ""
    text = content_text(message.get("content")) + refusal
    if text.strip():
        content.append({"type": "text", "text": text})
    calls = (
        [c for c in message.get("tool_calls") or [] if isinstance(c, dict)]
        if isinstance(message.get("tool_calls"), list)
        else []
    )
    if isinstance(message.get("function_call"), dict):
        calls.append({"id": "", "function": message["function_call"]})
    ids, names = ToolIds(), tool_names or {}
    for call in calls:
        function = call.get("function")
        if not isinstance(function, dict):
            function = {}
        name = function.get("name")
        if not isinstance(name, str):
            name = ""
        content.append(
            {
                "type": "tool_use",
                "id": ids.anthropic_id(call.get("id")),
                "name": names.get(name, name),
                "input": parse_arguments(function.get("arguments")),
            }
        )
    stop_sequence = None if calls else matched_stop(choices[0], stop_sequences)
    if stop_sequence:
        stop = "stop_sequence"
    elif refusal and not calls:
        stop = "refusal"
    else:
        stop = stop_reason(choices[0].get("finish_reason"), called_tools=bool(calls))
    return {
        "id": new_message_id(),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop,
        "stop_sequence": stop_sequence,
        "usage": anthropic_usage(usage_of(body)),
    }


def anthropic_to_openai_response(body: dict, model: str, created: int = 0) -> dict:
    """An Anthropic Message as a `chat.completion` answered by `model`."""
    blocks = body.get("content") if isinstance(body, dict) else None
    if not isinstance(blocks, list):
        raise ConversionError("content", "expected a list")
    texts, thoughts, calls = [], [], []
    for block in blocks:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text":
            texts.append(block.get("text", ""))
        elif block.get("type") == "thinking":
            thoughts.append(block.get("thinking", ""))
        elif block.get("type") == "tool_use":
            calls.append(
                {
                    "id": block.get("id", ""),
                    "type": "function",
                    "function": {
                        "name": block.get("name", ""),
                        "arguments": json_text(block.get("input") or {}),
                    },
                }
            )
    message: dict = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if thoughts:
        message["reasoning_content"] = "".join(thoughts)
    if calls:
        message["tool_calls"] = calls
    return {
        "id": completion_id(body.get("id")),
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish_reason(body.get("stop_reason")),
            }
        ],
        "usage": openai_usage(body.get("usage")),
    }
