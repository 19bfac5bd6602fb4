"""Request bodies translated between Anthropic Messages and OpenAI Chat Completions.

Both converters build a new body from the fields they know; anything else (`cache_control`,
`context_management`, `output_config`, `top_k`, server tools, …) is dropped, never forwarded.

Anthropic → OpenAI, the less obvious choices:
- `system` (a string or text blocks) becomes one leading `system` message; text blocks are joined
  with a blank line, and a message made only of text becomes a plain string.
- a user turn's `tool_result` blocks become `role: tool` messages placed before the rest of that turn;
  a result flagged `is_error` starts with `ERROR: `; images inside a tool result become `[image]`.
- assistant `thinking` blocks become `reasoning_content` (their signatures are dropped).
- `thinking: {type: enabled, budget_tokens: N}` becomes `reasoning_effort`: N < 4096 → low,
  N < 16384 → medium, else high; `adaptive` → medium; `disabled` → nothing.

OpenAI → Anthropic: `max_tokens` defaults to 4096 (Anthropic requires it); temperature is capped
at 1.0 (Anthropic's range); `reasoning_content` in history is dropped (Anthropic rejects thinking
blocks without a signature); consecutive turns of one role are merged, as Anthropic requires.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from proxy.core.convert.errors import ConversionError
from proxy.core.convert.ids import anthropic_safe_id, provider_tool_id

try:  # tool-call arguments are written per call: the fast encoder, the same JSON
    import orjson
except ImportError:  # pragma: no cover - a dependency; json writes the same text without it
    orjson = None  # type: ignore[assignment]  # (an optional module: None when missing)

DEFAULT_MAX_TOKENS = 4096
# OpenAI's rule for function names; longer names (MCP tools) and other characters are shortened
TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_TOOL_NAME_KEEP = 55
UNNAMED_TOOL = "unnamed_tool"
LOW_EFFORT_BELOW = 4096
MEDIUM_EFFORT_BELOW = 16384
_JOIN = "\n\n"


def _blocks(content: object, field: str) -> list[dict]:
    """Content as a list of blocks/parts: a string is one text block; None is none."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if isinstance(content, list):
        return [b for b in content if isinstance(b, dict)]
    raise ConversionError(field, f"expected a string or a list, got {type(content).__name__}")


def _texts(content: object, field: str) -> str:
    return _JOIN.join(b.get("text", "") for b in _blocks(content, field) if b.get("type") == "text")


def _messages(body: dict) -> list:
    if not isinstance(body, dict):
        raise ConversionError("body", f"expected a JSON object, got {type(body).__name__}")
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise ConversionError("messages", "expected a list")
    return messages


def _copy(src: dict, dst: dict, pairs: tuple[tuple[str, str], ...]) -> None:
    for old, new in pairs:
        if src.get(old) not in (None, []):
            dst[new] = src[old]


def json_bytes(value: object) -> bytes:
    """`value` as compact UTF-8 JSON: orjson's, else json's, the same text (a converted body or
    answer, a rewritten body)."""
    if orjson is not None:
        try:
            return orjson.dumps(value)
        except TypeError:  # e.g. integers past 64 bits: json writes them
            pass
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def json_text(value: object) -> str:
    """json_bytes() as text (a tool call's `arguments`)."""
    return json_bytes(value).decode()


# --- Anthropic → OpenAI -------------------------------------------------------------------------


def _image_part(block: dict) -> dict | None:
    source = block.get("source") or {}
    if source.get("type") == "base64":
        url = f"data:{source.get('media_type', 'image/png')};base64,{source.get('data', '')}"
    elif source.get("type") == "url":
        url = source.get("url", "")
    else:
        return None
    return {"type": "image_url", "image_url": {"url": url}}


def provider_tool_name(name: object) -> str:
    """The tool name a provider is given: the client's when OpenAI's rule allows it, else a
    shortened, cleaned one that stays unique (a hash of the original); never empty."""
    if not isinstance(name, str) or not name:
        return UNNAMED_TOOL
    if TOOL_NAME.match(name):
        return name
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:8]
    return re.sub(r"[^A-Za-z0-9_-]", "_", name)[:_TOOL_NAME_KEEP] + "_" + digest


def _tool_result(block: dict, field: str) -> tuple[str, list[dict]]:
    """(the text a `tool` message carries, the image parts that must follow it in a user turn)."""
    content = block.get("content")
    images: list[dict] = []
    if isinstance(content, str):  # the usual shape: no blocks to build
        text = content
    else:
        parts = []
        for inner in _blocks(content, field):
            kind = inner.get("type")
            if kind == "text":
                parts.append(inner.get("text", ""))
            elif kind == "image":
                part = _image_part(inner)
                if part is not None:
                    images.append(part)
                    parts.append("[image: attached in the next message]")
                else:
                    parts.append("[image]")
        text = _JOIN.join(parts)
    return (f"ERROR: {text}" if block.get("is_error") else text), images


def _simplify(parts: list[dict]) -> str | list[dict]:
    if all(p["type"] == "text" for p in parts):
        return _JOIN.join(p["text"] for p in parts)
    return parts


# The two below run for every turn of every converted request: the field named in an error is
# spelled out only when there is an error, and a string content takes no detour through blocks.


def _user_to_openai(content: object, i: int) -> list[dict]:
    if isinstance(content, str):  # one text block, simplified: the string itself
        return [{"role": "user", "content": content}]
    tool_messages, parts, images = [], [], []
    n = 0  # the index among the turn's blocks (those that are objects), as errors name it
    for block in (
        _blocks(content, f"messages[{i}].content") if not isinstance(content, list) else content
    ):
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text":
            parts.append({"type": "text", "text": block.get("text", "")})
        elif kind == "tool_result":
            text, shown = _tool_result(block, f"messages[{i}].content[{n}].content")
            call_id = provider_tool_id(block.get("tool_use_id", ""))
            tool_messages.append({"role": "tool", "tool_call_id": call_id, "content": text})
            if shown:  # a tool message carries text only: its images follow in the user turn
                images += [
                    {"type": "text", "text": f"Image(s) returned by tool call {call_id}:"},
                    *shown,
                ]
        elif kind == "image":
            part = _image_part(block)
            if part is not None:
                parts.append(part)
        n += 1
    parts = images + parts
    if parts:
        tool_messages.append({"role": "user", "content": _simplify(parts)})
    return tool_messages


def _assistant_to_openai(content: object, i: int) -> dict:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    texts, thoughts, calls = [], [], []
    for block in (
        _blocks(content, f"messages[{i}].content") if not isinstance(content, list) else content
    ):
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text":
            texts.append(block.get("text", ""))
        elif kind == "tool_use":
            calls.append(
                {
                    "id": provider_tool_id(block.get("id", "")),
                    "type": "function",
                    "function": {
                        "name": provider_tool_name(block.get("name")),
                        "arguments": json_text(block.get("input") or {}),
                    },
                }
            )
        elif kind == "thinking":
            thoughts.append(block.get("thinking", ""))
    message: dict = {
        "role": "assistant",
        "content": _JOIN.join(texts) if texts or not calls else None,
    }
    if thoughts:
        message["reasoning_content"] = _JOIN.join(thoughts)
    if calls:
        message["tool_calls"] = calls
    return message


def _tool_choice_to_openai(choice: Any) -> str | dict | None:  # (a JSON value)
    kind: Any = choice.get("type") if isinstance(choice, dict) else None
    if kind == "tool" and isinstance(choice.get("name"), str) and choice["name"]:
        return {"type": "function", "function": {"name": provider_tool_name(choice["name"])}}
    if kind == "tool":
        return "required"
    return {"auto": "auto", "any": "required", "none": "none"}.get(kind)


def reasoning_effort(thinking: object) -> str | None:
    """The OpenAI `reasoning_effort` for an Anthropic `thinking` request parameter (see module doc)."""
    if not isinstance(thinking, dict):
        return None
    if thinking.get("type") == "adaptive":
        return "medium"
    if thinking.get("type") != "enabled":
        return None
    budget = thinking.get("budget_tokens") or 0
    if budget < LOW_EFFORT_BELOW:
        return "low"
    return "medium" if budget < MEDIUM_EFFORT_BELOW else "high"


def _with_system_text(turn_messages: list[dict], held: list[str]) -> list[dict]:
    """A user turn's messages with system text from between the turns put into its user message
    (after its `tool` messages, which must follow their assistant message directly)."""
    text = _JOIN.join(held)
    for _n, message in enumerate(turn_messages):
        if message["role"] == "user":
            content = message["content"]
            if isinstance(content, str):
                message["content"] = text + _JOIN + content if content else text
            else:
                message["content"] = [{"type": "text", "text": text}, *content]
            return turn_messages
    return [*turn_messages, {"role": "user", "content": text}]


def _append_text(message: dict, text: str) -> None:
    content = message["content"]
    if isinstance(content, str):
        message["content"] = content + _JOIN + text if content else text
    else:
        message["content"] = [*content, {"type": "text", "text": text}]


def anthropic_to_openai_request(
    body: dict, upstream_model: str, tool_names: dict[str, str] | None = None
) -> dict:
    """An Anthropic Messages request as an OpenAI Chat Completions request for `upstream_model`.

    Tool names OpenAI's rule refuses are shortened (`provider_tool_name`); when `tool_names` is
    given, it receives {name sent: the client's name} for each, to restore them in the answer.
    System messages between turns (Claude Code 2.1 sends them; vLLM and Hugging Face chat templates
    refuse a `system` message anywhere but first) join the leading system message while no turn
    came before them, the user message right before them, else the next user message."""
    messages = _messages(body)
    out: dict = {"model": upstream_model, "messages": []}
    system = _texts(body.get("system"), "system")
    if system:
        out["messages"].append({"role": "system", "content": system})
    turns = out["messages"]
    held: list[str] = []  # system text from between the turns, for the next user message
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise ConversionError(f"messages[{i}]", "expected an object")
        role = message.get("role")
        if role == "assistant":
            turns.append(_assistant_to_openai(message.get("content"), i))
        elif role == "user":
            converted = _user_to_openai(message.get("content"), i)
            turns.extend(_with_system_text(converted, held) if held else converted)
            held = []
        elif role == "system":
            text = _texts(message.get("content"), f"messages[{i}].content")
            if not text:
                continue
            if all(turn["role"] == "system" for turn in turns):  # nothing else yet: it leads
                if turns:
                    turns[0]["content"] += _JOIN + text
                else:
                    turns.append({"role": "system", "content": text})
            elif turns[-1]["role"] == "user" and not held:  # right after a user turn: part of it
                _append_text(turns[-1], text)
            else:
                held.append(text)
        else:
            raise ConversionError(f"messages[{i}].role", f"unknown role {role!r}")
    if held:
        turns.append({"role": "user", "content": _JOIN.join(held)})
    _copy(
        body,
        out,
        (
            ("max_tokens", "max_tokens"),
            ("temperature", "temperature"),
            ("top_p", "top_p"),
            ("stop_sequences", "stop"),
        ),
    )
    user = (body.get("metadata") or {}).get("user_id")
    if user:
        out["user"] = user
    if body.get("stream"):
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    tools = []
    for t in body.get("tools") or []:
        if not isinstance(t, dict) or "input_schema" not in t:
            continue
        name = t.get("name")
        if not isinstance(name, str) or not name:  # a nameless tool cannot be called: not sent
            continue
        sent = provider_tool_name(name)
        if sent != name and tool_names is not None:
            tool_names[sent] = name
        tools.append(
            {
                "type": "function",
                "function": {
                    "name": sent,
                    "description": t.get("description", ""),
                    "parameters": t["input_schema"],
                },
            }
        )
    if tools:
        out["tools"] = tools
    choice = body.get("tool_choice")
    mapped = _tool_choice_to_openai(choice)
    if mapped is not None and tools:
        out["tool_choice"] = mapped
    if tools and isinstance(choice, dict) and choice.get("disable_parallel_tool_use"):
        out["parallel_tool_calls"] = False
    effort = reasoning_effort(body.get("thinking"))
    if effort:
        out["reasoning_effort"] = effort
    return out


# --- OpenAI → Anthropic -------------------------------------------------------------------------


def image_source(url: str) -> dict:
    """An Anthropic image `source` for an OpenAI image URL (a `data:` URL becomes base64)."""
    if url.startswith("data:") and ";base64," in url:
        head, data = url[5:].split(";base64,", 1)
        return {"type": "base64", "media_type": head or "image/png", "data": data}
    return {"type": "url", "url": url}


def _parts_to_anthropic(content: object, field: str) -> list[dict]:
    blocks = []
    for part in _blocks(content, field):
        if part.get("type") == "text" and part.get("text"):
            blocks.append({"type": "text", "text": part["text"]})
        elif part.get("type") == "image_url":
            image = part.get("image_url")
            url = image.get("url", "") if isinstance(image, dict) else str(image or "")
            blocks.append({"type": "image", "source": image_source(url)})
    return blocks


def parse_arguments(arguments: Any) -> dict:
    """Tool-call arguments (a JSON string) as an object; unparsable text is kept under `_raw`."""
    if isinstance(arguments, dict):
        return arguments
    if not arguments:
        return {}
    try:
        parsed = json.loads(arguments)
    except (ValueError, TypeError):
        return {"_raw": str(arguments)}
    return parsed if isinstance(parsed, dict) else {"_raw": str(arguments)}


def _assistant_to_anthropic(message: dict, field: str) -> list[dict]:
    blocks = _parts_to_anthropic(message.get("content"), field)
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        blocks.append(
            {
                "type": "tool_use",
                "id": anthropic_safe_id(call.get("id")),
                "name": function.get("name", ""),
                "input": parse_arguments(function.get("arguments")),
            }
        )
    return blocks


def _tool_choice_to_anthropic(choice: Any) -> dict | None:  # (a JSON value)
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        return {"type": "tool", "name": name} if name else None
    return {"auto": {"type": "auto"}, "required": {"type": "any"}, "none": {"type": "none"}}.get(
        choice
    )


def _append(turns: list[dict], role: str, blocks: list[dict]) -> None:
    if not blocks:
        return
    if turns and turns[-1]["role"] == role:
        turns[-1]["content"].extend(blocks)
    else:
        turns.append({"role": role, "content": blocks})


def openai_to_anthropic_request(body: dict, upstream_model: str) -> dict:
    """An OpenAI Chat Completions request as an Anthropic Messages request for `upstream_model`."""
    messages = _messages(body)
    system: list[str] = []
    turns: list[dict] = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise ConversionError(f"messages[{i}]", "expected an object")
        role, field = message.get("role"), f"messages[{i}].content"
        if role in ("system", "developer"):
            system.append(_texts(message.get("content"), field))
        elif role == "user":
            _append(turns, "user", _parts_to_anthropic(message.get("content"), field))
        elif role == "assistant":
            _append(turns, "assistant", _assistant_to_anthropic(message, field))
        elif role == "tool":
            _append(
                turns,
                "user",
                [
                    {
                        "type": "tool_result",
                        "tool_use_id": anthropic_safe_id(message.get("tool_call_id")),
                        "content": _texts(message.get("content"), field),
                    }
                ],
            )
        else:
            raise ConversionError(f"messages[{i}].role", f"unknown role {role!r}")
    out: dict = {
        "model": upstream_model,
        "messages": turns,
        "max_tokens": body.get("max_tokens")
        or body.get("max_completion_tokens")
        or DEFAULT_MAX_TOKENS,
    }
    if any(system):
        out["system"] = _JOIN.join(s for s in system if s)
    if body.get("temperature") is not None:
        out["temperature"] = min(float(body["temperature"]), 1.0)
    _copy(body, out, (("top_p", "top_p"),))
    stop = body.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if body.get("user"):
        out["metadata"] = {"user_id": body["user"]}
    if body.get("stream"):
        out["stream"] = True
    tools = []
    for tool in body.get("tools") or []:
        function = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(function, dict) and function.get("name"):
            converted = {
                "name": function["name"],
                "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
            }
            if function.get("description"):
                converted["description"] = function["description"]
            tools.append(converted)
    if tools:
        out["tools"] = tools
        choice = _tool_choice_to_anthropic(body.get("tool_choice"))
        if body.get("parallel_tool_calls") is False:
            choice = {**(choice or {"type": "auto"}), "disable_parallel_tool_use": True}
        if choice is not None:
            out["tool_choice"] = choice
    return out
