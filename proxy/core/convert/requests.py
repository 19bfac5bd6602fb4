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
from proxy.core.jsontext import dumps

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


def kind_of(value: object) -> str:
    """A JSON value's kind, as an error about it names it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "a list" if isinstance(value, list) else "an object"


def _str(value: object, field: str, default: str = "") -> str:
    """A field that must be a string when present (absent or null: `default`)."""
    if value is None:
        return default
    if isinstance(value, str):
        return value
    raise ConversionError(field, f"expected a string, got {kind_of(value)}")


def _obj(value: object, field: str) -> dict:
    """A field that must be an object when present (absent or null: an empty one)."""
    if value is None:
        return {}
    if isinstance(value, dict):
        return value
    raise ConversionError(field, f"expected an object, got {kind_of(value)}")


def _list(value: object, field: str) -> list:
    """A field that must be a list when present (absent or null: an empty one)."""
    if value is None:
        return []
    if isinstance(value, list):
        return value
    raise ConversionError(field, f"expected a list, got {kind_of(value)}")


def _number(value: object, field: str) -> float | int:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    raise ConversionError(field, f"expected a number, got {kind_of(value)}")


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
    """The text blocks (or parts) of a content, joined; each block's `text` must be a string."""
    if isinstance(content, str):
        return content
    if content is None:
        return ""
    texts = []
    for n, block in enumerate(_list(content, field)):
        if isinstance(block, dict) and block.get("type") == "text":
            texts.append(_str(block.get("text"), f"{field}[{n}].text"))
    return _JOIN.join(texts)


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
    return dumps(value, separators=(",", ":"))  # (lone surrogates, which orjson refuses, escaped)


def json_text(value: object) -> str:
    """json_bytes() as text (a tool call's `arguments`)."""
    return json_bytes(value).decode()


# --- Anthropic → OpenAI -------------------------------------------------------------------------


def _image_part(block: dict, field: str) -> dict | None:
    field += ".source"
    source = _obj(block.get("source"), field)
    kind = source.get("type")
    if kind == "base64":
        media_type = _str(source.get("media_type"), f"{field}.media_type", "image/png")
        url = f"data:{media_type};base64,{_str(source.get('data'), f'{field}.data')}"
    elif kind == "url":
        url = _str(source.get("url"), f"{field}.url")
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
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return re.sub(r"[^A-Za-z0-9_-]", "_", name)[:_TOOL_NAME_KEEP] + "_" + digest


def _tool_result(block: dict, field: str) -> tuple[str, list[dict]]:
    """(the text a `tool` message carries, the image parts that must follow it in a user turn)."""
    content = block.get("content")
    images: list[dict] = []
    if isinstance(content, str):  # the usual shape: no blocks to build
        text = content
    else:
        parts = []
        for n, inner in enumerate(_list(content, field)):
            if not isinstance(inner, dict):
                continue
            kind = inner.get("type")
            if kind == "text":
                parts.append(_str(inner.get("text"), f"{field}[{n}].text"))
            elif kind == "image":
                part = _image_part(inner, f"{field}[{n}]")
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
    for n, block in enumerate(
        _blocks(content, f"messages[{i}].content") if not isinstance(content, list) else content
    ):
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text":
            text = _str(block.get("text"), f"messages[{i}].content[{n}].text")
            parts.append({"type": "text", "text": text})
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
            part = _image_part(block, f"messages[{i}].content[{n}]")
            if part is not None:
                parts.append(part)
    parts = images + parts
    if parts:
        tool_messages.append({"role": "user", "content": _simplify(parts)})
    return tool_messages


def _assistant_to_openai(content: object, i: int) -> dict:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    texts, thoughts, calls = [], [], []
    for n, block in enumerate(
        _blocks(content, f"messages[{i}].content") if not isinstance(content, list) else content
    ):
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text":
            texts.append(_str(block.get("text"), f"messages[{i}].content[{n}].text"))
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
            thoughts.append(_str(block.get("thinking"), f"messages[{i}].content[{n}].thinking"))
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
    return (
        {"auto": "auto", "any": "required", "none": "none"}.get(kind)
        if isinstance(kind, str)
        else None
    )


def reasoning_effort(thinking: object) -> str | None:
    """The OpenAI `reasoning_effort` for an Anthropic `thinking` request parameter (see module doc)."""
    if not isinstance(thinking, dict):
        return None
    if thinking.get("type") == "adaptive":
        return "medium"
    if thinking.get("type") != "enabled":
        return None
    budget = _number(thinking.get("budget_tokens") or 0, "thinking.budget_tokens")
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
            raise ConversionError(f"messages[{i}]", f"expected an object, got {kind_of(message)}")
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
    user = _obj(body.get("metadata"), "metadata").get("user_id")
    if user:
        out["user"] = user
    if body.get("stream"):
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    tools = []
    for t in _list(body.get("tools"), "tools"):
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
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks: list[dict] = []
    for n, part in enumerate(_list(content, field)):
        if not isinstance(part, dict):
            continue
        if part.get("type") == "text":
            text = _str(part.get("text"), f"{field}[{n}].text")
            if text:
                blocks.append({"type": "text", "text": text})
        elif part.get("type") == "image_url":
            image = part.get("image_url")
            if isinstance(image, dict):
                url = _str(image.get("url"), f"{field}[{n}].image_url.url")
            else:
                url = _str(image, f"{field}[{n}].image_url")
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


def _capped(temperature: float) -> float:
    """A temperature in Anthropic's range: at most 1.0 (one past any float's range kept as it is,
    for the provider to refuse)."""
    if temperature >= 1:
        return 1.0
    try:
        return float(temperature)
    except OverflowError:
        return temperature


def _assistant_to_anthropic(message: dict, field: str, i: int) -> list[dict]:
    blocks = _parts_to_anthropic(message.get("content"), field)
    calls = f"messages[{i}].tool_calls"
    for n, call in enumerate(_list(message.get("tool_calls"), calls)):
        call = _obj(call, f"{calls}[{n}]")
        function = _obj(call.get("function"), f"{calls}[{n}].function")
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
        name = _obj(choice.get("function"), "tool_choice.function").get("name")
        return {"type": "tool", "name": name} if name else None
    if not isinstance(choice, str):
        return None
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
            raise ConversionError(f"messages[{i}]", f"expected an object, got {kind_of(message)}")
        role, field = message.get("role"), f"messages[{i}].content"
        if role in ("system", "developer"):
            system.append(_texts(message.get("content"), field))
        elif role == "user":
            _append(turns, "user", _parts_to_anthropic(message.get("content"), field))
        elif role == "assistant":
            _append(turns, "assistant", _assistant_to_anthropic(message, field, i))
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
        out["temperature"] = _capped(_number(body["temperature"], "temperature"))
    _copy(body, out, (("top_p", "top_p"),))
    stop = body.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(_list(stop, "stop"))
    if body.get("user"):
        out["metadata"] = {"user_id": body["user"]}
    if body.get("stream"):
        out["stream"] = True
    tools = []
    for tool in _list(body.get("tools"), "tools"):
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
