"""Anthropic → OpenAI request conversion straight from the body's bytes, for the shim's hot path.

`anthropic_to_openai_request` reads a parsed body and uses only the fields it knows. Parsing all of
a Claude Code body for it builds thousands of objects it never reads (`cache_control`, …) and the
tools' JSON schemas (half the body), which it only copies. Here msgspec reads the known fields,
skips the others, and keeps each tool's `input_schema` as its original bytes, which orjson writes
back in place: the schemas are never built as Python objects at all (docs/performance.md).

The converter itself is the same function on the same values: msgspec reads a JSON value as
json.loads does (integers of any size, the last of duplicate keys) and refuses what json.loads reads
differently (NaN, infinities, lone surrogates), and so does the schema it keeps as bytes. On any
refusal this returns None and the caller takes the exact path. The caller has checked the body is
UTF-8 (msgspec does not check bytes it skips) and nests no deeper than json.loads allows.
"""

from __future__ import annotations

from typing import Any

from proxy.core.convert.requests import anthropic_to_openai_request

try:
    import msgspec
    import orjson
except ImportError:  # pragma: no cover - dependencies; the exact path converts without them
    msgspec = orjson = None  # type: ignore[assignment]  # (optional: None when missing)

if msgspec is not None:
    _UNSET = msgspec.UNSET
    _NO_SCHEMA = msgspec.Raw(b"")

    class _Tool(msgspec.Struct):
        name: Any = ""
        description: Any = ""
        input_schema: msgspec.Raw = _NO_SCHEMA  # kept as the client wrote it

    class _Body(msgspec.Struct):
        """The fields anthropic_to_openai_request reads; any others are skipped unread."""

        model: Any = _UNSET
        messages: Any = _UNSET
        system: Any = _UNSET
        max_tokens: Any = _UNSET
        temperature: Any = _UNSET
        top_p: Any = _UNSET
        stop_sequences: Any = _UNSET
        metadata: Any = _UNSET
        stream: Any = _UNSET
        tools: list[_Tool] | None = None
        tool_choice: Any = _UNSET
        thinking: Any = _UNSET

    _DECODER = msgspec.json.Decoder(_Body)
    _FIELDS = tuple(f for f in _Body.__struct_fields__ if f != "tools")


def anthropic_body_to_openai(
    body: bytes, upstream_model: str, tool_names: dict[str, str] | None = None
) -> tuple[dict, bytes] | None:
    """(the OpenAI request, its bytes), or None when the exact path must decide.

    Raises ConversionError as anthropic_to_openai_request does. The dict holds each tool schema as
    an orjson Fragment: it is for writing, not for reading."""
    if msgspec is None:
        return None
    try:
        parsed = _DECODER.decode(body)
    except msgspec.MsgspecError:  # not an object of the expected shape, NaN, …: json decides
        return None
    payload = {}
    for field in _FIELDS:
        value = getattr(parsed, field)
        if value is not _UNSET:
            payload[field] = value
    if parsed.tools is not None:  # (a tool without input_schema is not sent: the converter's rule)
        payload["tools"] = [
            {
                "name": t.name,
                "description": t.description,
                "input_schema": orjson.Fragment(bytes(t.input_schema)),
            }
            for t in parsed.tools
            if len(t.input_schema)
        ]
    out = anthropic_to_openai_request(payload, upstream_model, tool_names)
    try:
        return out, orjson.dumps(out)
    except TypeError:  # e.g. an integer past 64 bits: the exact path writes it with json
        return None
