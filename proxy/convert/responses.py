"""Whole (non-streamed) responses translated between OpenAI Chat Completions and Anthropic Messages.

Also owns the small vocabularies both the response and the stream converters share: stop reasons,
usage counters and message ids.

- OpenAI `finish_reason` → Anthropic `stop_reason`: stop → end_turn, length → max_tokens,
  tool_calls / function_call → tool_use (also when a provider says `stop` but did call tools),
  content_filter → refusal. A matched stop string cannot be told apart from a natural end, so
  `stop_sequence` is never produced.
- Anthropic content order is thinking (from `reasoning_content`, signature ""), text, tool_use.
- Anthropic → OpenAI: `prompt_tokens` counts all input (plain + cache read + cache creation), and
  `prompt_tokens_details.cached_tokens` the cache reads.
"""
from __future__ import annotations


from proxy.convert.errors import ConversionError
from proxy.convert.requests import json_text, parse_arguments

_STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use",
                 "function_call": "tool_use", "content_filter": "refusal"}
_FINISH_REASONS = {"end_turn": "stop", "stop_sequence": "stop", "pause_turn": "stop",
                   "max_tokens": "length", "model_context_window_exceeded": "length",
                   "tool_use": "tool_calls", "refusal": "content_filter"}


def stop_reason(finish_reason: str | None, called_tools: bool = False) -> str:
    """The Anthropic `stop_reason` for an OpenAI `finish_reason`."""
    if called_tools and finish_reason in (None, "stop"):
        return "tool_use"
    return _STOP_REASONS.get(finish_reason or "stop", "end_turn")


def finish_reason(stop: str | None) -> str:
    """The OpenAI `finish_reason` for an Anthropic `stop_reason`."""
    return _FINISH_REASONS.get(stop or "end_turn", "stop")


def anthropic_usage(usage: object) -> dict:
    """Anthropic `usage` from an OpenAI `usage` object (missing counters are 0)."""
    usage = usage if isinstance(usage, dict) else {}
    details = usage.get("prompt_tokens_details") or {}
    return {"input_tokens": usage.get("prompt_tokens") or 0,
            "output_tokens": usage.get("completion_tokens") or 0,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": details.get("cached_tokens") or 0}


def openai_usage(usage: object) -> dict:
    """OpenAI `usage` from an Anthropic `usage` object (input includes cache reads and writes)."""
    usage = usage if isinstance(usage, dict) else {}
    cached = usage.get("cache_read_input_tokens") or 0
    prompt = (usage.get("input_tokens") or 0) + cached + (usage.get("cache_creation_input_tokens") or 0)
    completion = usage.get("output_tokens") or 0
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion, "prompt_tokens_details": {"cached_tokens": cached}}


def message_id(openai_id: object) -> str:
    """An Anthropic `msg_…` id derived from an OpenAI completion id."""
    raw = str(openai_id or "")
    for prefix in ("chatcmpl-", "msg_"):
        if raw.startswith(prefix):
            raw = raw[len(prefix):]
    return f"msg_{raw or 'converted'}"


def completion_id(anthropic_id: object) -> str:
    """An OpenAI `chatcmpl-…` id derived from an Anthropic message id."""
    raw = str(anthropic_id or "")
    return f"chatcmpl-{raw[4:] if raw.startswith('msg_') else raw or 'converted'}"


def reasoning_text(message: dict) -> str:
    """The reasoning a provider put on a message or delta (`reasoning_content`, else `reasoning`)."""
    value = message.get("reasoning_content") or message.get("reasoning")
    return value if isinstance(value, str) else ""


def _content_text(content: object) -> str:
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return content if isinstance(content, str) else ""


def openai_to_anthropic_response(body: dict, model: str) -> dict:
    """A Chat Completions response as an Anthropic Message answered by `model`."""
    choices = body.get("choices") if isinstance(body, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise ConversionError("choices", "expected a non-empty list")
    message = choices[0].get("message")
    if not isinstance(message, dict):
        raise ConversionError("choices[0].message", "expected an object")
    content: list[dict] = []
    thinking = reasoning_text(message)
    if thinking:
        content.append({"type": "thinking", "thinking": thinking, "signature": ""})
    text = _content_text(message.get("content")) or (message.get("refusal") or "")
    if text:
        content.append({"type": "text", "text": text})
    calls = list(message.get("tool_calls") or [])
    if isinstance(message.get("function_call"), dict):
        calls.append({"id": "", "function": message["function_call"]})
    for n, call in enumerate(calls):
        function = call.get("function") or {}
        content.append({"type": "tool_use", "id": call.get("id") or f"toolu_{n}",
                        "name": function.get("name", ""), "input": parse_arguments(function.get("arguments"))})
    stop = stop_reason(choices[0].get("finish_reason"), called_tools=bool(calls))
    if message.get("refusal") and not calls:
        stop = "refusal"
    return {"id": message_id(body.get("id")), "type": "message", "role": "assistant", "model": model,
            "content": content, "stop_reason": stop, "stop_sequence": None,
            "usage": anthropic_usage(body.get("usage"))}


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
            calls.append({"id": block.get("id", ""), "type": "function",
                          "function": {"name": block.get("name", ""),
                                       "arguments": json_text(block.get("input") or {})}})
    message: dict = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if thoughts:
        message["reasoning_content"] = "".join(thoughts)
    if calls:
        message["tool_calls"] = calls
    return {"id": completion_id(body.get("id")), "object": "chat.completion", "created": created,
            "model": model,
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": finish_reason(body.get("stop_reason"))}],
            "usage": openai_usage(body.get("usage"))}
