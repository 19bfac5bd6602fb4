"""Ids an Anthropic client can rely on for answers from OpenAI-protocol providers
(proxy.core.convert.ids): fresh message and tool-use ids, provider ids kept when valid and new,
wrapped reversibly when not, and request-side ids that are the same every time."""
import re

import pytest

from proxy.core.convert.ids import (
    VALID_ID,
    ToolIds,
    anthropic_safe_id,
    new_message_id,
    new_tool_id,
    provider_tool_id,
    wrap_tool_id,
)
from tests.proxy.core.convert.fresh_ids import MESSAGE_ID, TOOL_ID

pytestmark = pytest.mark.quick

WRAPPED = re.compile(r"^toolu_ccp_[A-Za-z0-9]{8}[A-Za-z0-9_-]+$")


def test_fresh_ids_have_anthropics_shape_and_never_repeat():
    messages = {new_message_id() for _ in range(200)}
    tools = {new_tool_id() for _ in range(200)}
    assert len(messages) == len(tools) == 200
    assert all(MESSAGE_ID.match(i) for i in messages) and all(TOOL_ID.match(i) for i in tools)
    assert all(VALID_ID.match(i) for i in messages | tools)


@pytest.mark.parametrize("provider_id", [
    "functions.Bash:0", "call 1", "tool/ü/✓", "x" * 300, "ends-with-pad=",
])
def test_a_wrapped_id_is_valid_unique_and_gives_the_providers_id_back(provider_id):
    first, second = wrap_tool_id(provider_id), wrap_tool_id(provider_id)
    assert WRAPPED.match(first) and VALID_ID.match(first) and first != second
    assert provider_tool_id(first) == provider_tool_id(second) == provider_id


@pytest.mark.parametrize("value", [
    "toolu_01abc", "call_0", "toolu_ccp_short", "toolu_ccp_ABCDEFGH", "toolu_ccp_ABCDEFGH!!", None, 7,
])
def test_provider_tool_id_leaves_every_other_value_as_it_is(value):
    assert provider_tool_id(value) == value


def test_a_wrapped_id_whose_payload_is_not_utf8_is_left_as_it_is():
    broken = "toolu_ccp_ABCDEFGH_w"  # "_w" decodes to 0xff: not UTF-8
    assert provider_tool_id(broken) == broken


def test_one_answers_tool_ids_keep_valid_new_ids_and_wrap_the_rest():
    ids = ToolIds()
    assert ids.anthropic_id("call_0") == "call_0"
    repeat = ids.anthropic_id("call_0")  # the same id twice in one answer: not reused
    kimi = ids.anthropic_id("functions.Bash:0")
    made = ids.anthropic_id("")
    none = ids.anthropic_id(None)
    assert WRAPPED.match(repeat) and provider_tool_id(repeat) == "call_0"
    assert WRAPPED.match(kimi) and provider_tool_id(kimi) == "functions.Bash:0"
    assert TOOL_ID.match(made) and TOOL_ID.match(none) and made != none
    assert len({"call_0", repeat, kimi, made, none}) == 5
    assert ToolIds().anthropic_id("call_0") == "call_0"  # another answer starts afresh


def test_a_request_side_id_is_the_same_every_time_and_always_valid():
    assert anthropic_safe_id("toolu_01abc") == "toolu_01abc"
    kimi = anthropic_safe_id("functions.Bash:0")
    assert kimi == anthropic_safe_id("functions.Bash:0") and kimi.startswith("toolu_oai_")
    assert VALID_ID.match(kimi) and kimi != anthropic_safe_id("functions.Bash:1")
    assert anthropic_safe_id("") == anthropic_safe_id(None) == "toolu_oai_empty"
    assert VALID_ID.match(anthropic_safe_id("ü ✓/+"))


def test_ids_with_lone_surrogates():
    from proxy.core.convert.ids import anthropic_safe_id, provider_tool_id, wrap_tool_id
    assert anthropic_safe_id("c\ud800") == anthropic_safe_id("c\ud800")
    assert anthropic_safe_id("c\ud800").isascii()
    assert provider_tool_id(wrap_tool_id("x\udc00")) == "x\udc00"
