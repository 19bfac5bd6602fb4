"""The quirks mocks: what each provider refuses, how its answers differ, and the mock's hook."""
import json

import httpx
import pytest

from harness.mock_openai_wire import ToolCall, chat_chunks, chat_completion_json
from harness.mock_quirks import (
    GEMINI_UNKNOWN,
    OPENROUTER_COMMENT,
    QUIRKS,
    VLLM_MAX_MODEL_LEN,
    check_name,
    keyword_uses,
    rejection,
    reshape,
)
from harness.mock_upstream import MockUpstream
from proxy.core.provider_profiles import PROFILES

pytestmark = pytest.mark.quick

USER = [{"role": "user", "content": "hi"}]


def refused(quirks, payload, headers=None, protocol=None, prompt=100):
    protocol = protocol or QUIRKS[quirks].protocol
    return rejection(quirks, protocol, {"model": "m", "messages": USER, **payload}, headers or {},
                     prompt)


def test_there_is_a_quirks_mock_for_every_built_in_profile():
    assert set(QUIRKS) == set(PROFILES)
    assert QUIRKS["zai-anthropic"].protocol == "anthropic"
    with pytest.raises(ValueError, match="unknown quirks 'nope'"):
        check_name("nope")
    with pytest.raises(ValueError):
        MockUpstream("x", quirks="nope")


@pytest.mark.parametrize("quirks, bad, good, status, text", [
    ("openai", {"max_tokens": 32000}, {"max_tokens": 16384}, 400,
     "max_tokens is too large: 32000. This model supports at most 16384 completion tokens"),
    ("openai", {"max_completion_tokens": 20000}, {"max_completion_tokens": 100}, 400,
     "max_tokens is too large: 20000"),
    ("deepseek", {"max_tokens": 32000}, {"max_tokens": 8192}, 400,
     "Invalid max_tokens value, the valid range of max_tokens is [1, 8192]"),
    ("moonshot", {"temperature": 0.5}, {"temperature": 1}, 400,
     "invalid temperature: only 1 is allowed for this model"),
    ("zai-openai", {"tool_choice": "required"}, {"tool_choice": "auto"}, 400,
     "Invalid API parameter, please check the documentation."),
    ("ollama", {"reasoning_effort": "low"}, {"reasoning_effort": "none"}, 400,
     '"m" does not support thinking'),
    ("vllm", {"max_tokens": VLLM_MAX_MODEL_LEN}, {"max_tokens": 16384}, 400,
     f"This model's maximum context length is {VLLM_MAX_MODEL_LEN} tokens. However, you "
     f"requested {VLLM_MAX_MODEL_LEN + 100} tokens (100 in the messages"),
])
def test_each_provider_refuses_what_it_was_seen_to_refuse(quirks, bad, good, status, text):
    got = refused(quirks, bad)
    assert got is not None and got[0] == status and text in json.dumps(got[1], ensure_ascii=False)\
        .replace('\\"', '"')
    assert refused(quirks, good) is None and refused(quirks, {}) is None


def test_vllm_refuses_a_system_message_after_the_first():
    messages = [{"role": "system", "content": "s"}, *USER, {"role": "system", "content": "late"}]
    status, body = refused("vllm", {"messages": messages})
    assert (status, body["object"], body["message"]) == (400, "error",
                                                         "System message must be at the beginning.")
    assert refused("vllm", {"messages": messages[:2]}) is None


def tool(schema):
    return {"tools": [{"type": "function", "function": {"name": "t", "parameters": schema}}]}


def test_openrouter_refuses_the_keywords_google_rejects_but_not_a_property_named_so():
    schema = {"type": "object", "$schema": "x",
              "properties": {"const": {"type": "string"},  # a property named `const`: fine
                             "n": {"type": "integer", "exclusiveMinimum": 0}}}
    status, body = refused("openrouter", tool(schema))
    assert status == 400 and body["error"]["message"] == "Provider returned error"
    assert body["error"]["metadata"]["provider_name"] == "Google"
    raw = json.loads(body["error"]["metadata"]["raw"])["error"]
    assert raw["status"] == "INVALID_ARGUMENT"
    assert raw["message"].count("Unknown name") == 2
    assert "Unknown name \"exclusiveMinimum\" at 'tools[0].function_declarations[0].parameters" \
           ".properties[n]'" in raw["message"]
    assert refused("openrouter", tool({"type": "object", "properties": {
        "const": {"type": "string", "enum": ["$schema"]}}})) is None


def test_lmstudio_refuses_an_unanchored_pattern():
    status, body = refused("lmstudio", tool({"type": "object", "properties": {
        "s": {"type": "string", "pattern": "\\S"}}}))
    assert status == 400 and "Pattern must start with '^' and end with '$'" in body["error"]["message"]
    assert refused("lmstudio", tool({"type": "object", "properties": {
        "s": {"type": "string", "pattern": "^\\S+$"}}})) is None


def test_zai_anthropic_refuses_the_claude_betas_and_only_on_its_protocol():
    headers = {"Anthropic-Beta": "claude-code-20250219,interleaved-thinking-2025-05-14"}
    status, body = refused("zai-anthropic", {"max_tokens": 10}, headers)
    assert status == 429 and body["error"]["type"] == "rate_limit_error"
    assert body["error"]["code"] == "1302" and body["type"] == "error"
    assert refused("zai-anthropic", {"max_tokens": 10}, {"anthropic-beta": "claude-code-20250219"}) \
        is None
    assert refused("zai-anthropic", {"max_tokens": 10}, headers, protocol="openai") is None
    assert refused("deepseek", {"max_tokens": 32000}, protocol="anthropic") is None


def test_keyword_uses_walks_schemas_not_names_or_data():
    schema = {"type": "object", "properties": {"format": {"type": "string", "default": {"x": 1}}},
              "items": [{"format": "uri"}], "anyOf": [{"const": 1}]}
    keywords = {(path, k) for path, k, _ in keyword_uses(schema)}
    assert (".properties[format]", "type") in keywords and ("", "properties") in keywords
    assert (".items[0]", "format") in keywords and (".anyOf[0]", "const") in keywords
    assert not any(k == "x" for _, k in keywords) and "$schema" in GEMINI_UNKNOWN


# --- answers --------------------------------------------------------------------------------------

CALL = [ToolCall("Bash", {"command": "ls"})]


def usage_of(chunks):
    return [json.loads(c[6:]) for c in chunks if c.startswith(b"data: {")]


def test_deepseek_usage_names_its_cache_counters():
    reply = reshape("deepseek", "openai", chat_completion_json("m", "hi", 10, 1))
    assert reply["usage"]["prompt_cache_hit_tokens"] + reply["usage"]["prompt_cache_miss_tokens"] == 10
    stream = reshape("deepseek", "openai", chat_chunks("m", "hi", 1, 10, True))
    assert usage_of(stream)[-1]["usage"]["prompt_cache_hit_tokens"] == 5


def test_moonshot_ids_usage_and_streamed_usage_inside_the_choice():
    reply = reshape("moonshot", "openai", chat_completion_json("m", "", 10, 1, CALL * 2))
    assert [c["id"] for c in reply["choices"][0]["message"]["tool_calls"]] == [
        "functions.Bash:0", "functions.Bash:1"]
    assert reply["usage"]["cached_tokens"] == 5
    stream = reshape("moonshot", "openai", chat_chunks("m", "", 1, 10, True, CALL))
    chunks = usage_of(stream)
    assert not any(c["choices"] == [] for c in chunks)  # no usage chunk of its own
    ids = [tc["id"] for c in chunks for tc in c["choices"][0]["delta"].get("tool_calls", [])
           if "id" in tc]
    assert ids == ["functions.Bash:0"]
    finish = next(c for c in chunks if c["choices"][0]["finish_reason"])
    assert finish["choices"][0]["usage"]["cached_tokens"] == 5
    assert stream[-1] == b"data: [DONE]\n\n"


def test_vllm_ollama_openrouter_dialects():
    vllm = reshape("vllm", "openai", chat_completion_json("m", "hi", 10, 1))
    assert vllm["choices"][0]["stop_reason"] is None
    ollama = reshape("ollama", "openai", chat_completion_json("m", "hi", 10, 1, reasoning="hmm"))
    message = ollama["choices"][0]["message"]
    assert message["reasoning"] == "hmm" and "reasoning_content" not in message
    streamed = usage_of(reshape("ollama", "openai", chat_chunks("m", "hi", 1, 10, False,
                                                               reasoning="hmm")))
    assert any("reasoning" in c["choices"][0]["delta"] for c in streamed)
    assert not any("reasoning_content" in c["choices"][0]["delta"] for c in streamed)
    chunks = reshape("openrouter", "openai", chat_chunks("m", "hi", 1, 10, False))
    assert chunks[0] == OPENROUTER_COMMENT
    same = chat_completion_json("m", "hi", 10, 1)
    assert reshape("openrouter", "openai", same) is same
    assert reshape("vllm", "anthropic", same) is same


# --- through the mock -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def deepseek():
    with MockUpstream("deepseek", quirks="deepseek") as mock:
        yield mock


def test_the_mock_refuses_and_reshapes_as_its_quirks_say(deepseek):
    deepseek.reset()
    url = deepseek.base_url + "/v1/chat/completions"
    with httpx.Client(trust_env=False, timeout=5) as http:
        r = http.post(url, json={"model": "deepseek-chat", "messages": USER, "max_tokens": 32000})
        assert r.status_code == 400 and r.json()["error"]["message"].startswith("Invalid max_tokens")
        r = http.post(url, json={"model": "deepseek-chat", "messages": USER, "max_tokens": 8192})
        assert r.status_code == 200 and "prompt_cache_hit_tokens" in r.json()["usage"]
        # the Anthropic side of the same mock is not DeepSeek's: answered as before
        r = http.post(deepseek.base_url + "/v1/messages",
                      json={"model": "x", "max_tokens": 32000, "messages": USER})
        assert r.status_code == 200
    first, second, _ = deepseek.calls
    assert (first.status, second.status) == (400, 200)
    assert first.json["max_tokens"] == 32000  # what it received is recorded either way
