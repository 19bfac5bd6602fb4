"""The local count_tokens estimate: about four characters a token, never below one."""
import json

import pytest

from proxy.core.convert import estimate_tokens
from proxy.core.convert.tokens import IMAGE_TOKENS

pytestmark = pytest.mark.quick


def test_counts_system_and_message_text():
    body = {"system": "a" * 40, "messages": [{"role": "user", "content": "b" * 80}]}
    assert estimate_tokens(body) == 30


def test_system_blocks_and_every_message_block_kind_count():
    body = {"system": [{"type": "text", "text": "x" * 8}], "messages": [
        {"role": "user", "content": [{"type": "text", "text": "y" * 8}]},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "z" * 8, "signature": "ignored" * 100},
            {"type": "tool_use", "id": "t", "name": "abcd", "input": {"k": "v"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t",
                                      "content": [{"type": "text", "text": "w" * 8}]}]}]}
    chars = 8 * 4 + len("abcd") + len(json.dumps({"k": "v"}))
    assert estimate_tokens(body) == -(-chars // 4)


def test_tool_definitions_count_as_json():
    tools = [{"name": "get_weather", "description": "d", "input_schema": {"type": "object"}}]
    base = {"messages": [{"role": "user", "content": "hi there"}]}
    compact = len(json.dumps(tools, separators=(",", ":")))
    assert estimate_tokens({**base, "tools": tools}) == -(-(len("hi there") + compact) // 4)


def test_images_count_a_flat_amount():
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "A" * 10000}}
    assert estimate_tokens({"messages": [{"role": "user", "content": [image]}]}) == IMAGE_TOKENS


@pytest.mark.parametrize("body", [{}, {"messages": []}, {"messages": [{"role": "user", "content": ""}]}, [], None])
def test_never_below_one(body):
    assert estimate_tokens(body) == 1


def test_grows_with_the_conversation():
    short = {"messages": [{"role": "user", "content": "hello " * 10}]}
    longer = {"messages": short["messages"] * 5}
    assert estimate_tokens(longer) > estimate_tokens(short)


@pytest.mark.parametrize("body", [
    {"messages": 1.5}, {"messages": [{"content": [{"type": "text", "text": 5}]}]},
    {"messages": [{"content": [{"type": "thinking", "thinking": ["a"]}, {"type": "tool_use", "name": {}}]}]},
    {"system": [{"type": "text", "text": {"a": "b"}}], "tools": {"x": 10**400}}, {"messages": "hi"},
])
def test_type_confused_bodies_are_still_estimated(body):
    assert estimate_tokens(body) >= 1
