"""Provider profiles, end to end: a Claude-Code-shaped request through the real shim to a mock that
refuses what that provider refuses (harness.mock_quirks).

Per profile one shim serves two providers on the same quirks mock: `profiled` names the profile,
`plain` is
the same provider without it. The request through `profiled` reaches the mock in the shape the provider
takes (what the mock RECEIVED is asserted: cap, dropped fields, stripped schema keywords, filtered
betas) and is answered; the same request through `plain` is refused by the mock with the provider's
own error, which the client gets — so each case shows the profile is what makes it pass.
"""
import anthropic
import pytest

from harness.mock_upstream import MockUpstream
from proxy.core.provider_profiles import PROFILES

pytestmark = [pytest.mark.repro_go]

KEY = "profile-test-key-5b27e0"
BETAS = ("claude-code-20250219,interleaved-thinking-2025-05-14,"
         "fine-grained-tool-streaming-2025-05-14,made-up-flag-2099-01-01")
TOOL = {"name": "Fetch", "description": "Fetch a URL",
        "input_schema": {
            "$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
            "additionalProperties": False, "required": ["format"],
            "properties": {
                "format": {"type": "string", "description": "answer format", "format": "uri"},
                "limit": {"type": "integer", "exclusiveMinimum": 0},
                "path": {"type": "string", "pattern": "\\S"}}}}
# Claude Code's system prompt runs to tens of KB; a few KB here (the vLLM mock counts a token per
# 4 bytes of body, so this one takes ~1,000 of its 32,768-token context)
SYSTEM = "You are Claude Code, an interactive CLI tool that helps users with software tasks. " * 48
# what Claude Code sends: a large max_tokens, thinking, metadata, cache_control, tools, betas
REQUEST = dict(
    max_tokens=32000, thinking={"type": "enabled", "budget_tokens": 2048},
    metadata={"user_id": "user_0123_account__session_4567"},
    system=[{"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral"}}],
    tools=[TOOL],
    messages=[{"role": "user", "content": [
        {"type": "text", "text": "Reply with exactly: PROFILE_OK and nothing else.",
         "cache_control": {"type": "ephemeral"}}]}],
    extra_headers={"anthropic-beta": BETAS})


def _schema(call, protocol):
    tool = call.json["tools"][0]
    return tool["function"]["parameters"] if protocol == "openai" else tool["input_schema"]


def _cap(limit):
    def check(call, protocol):
        assert call.json["max_tokens"] == limit
    return check


def _no(field):
    def check(call, protocol):
        assert field not in call.json
    return check


def _stripped(*keywords):
    def check(call, protocol):
        schema = _schema(call, protocol)
        props = schema["properties"]
        assert set(props) == {"format", "limit", "path"}  # the property named `format` stays
        present = {k for k in keywords if k in schema or any(k in p for p in props.values())}
        assert not present
        kept = {"$schema", "format", "exclusiveMinimum", "pattern", "additionalProperties"} \
            - set(keywords)
        for k in kept:  # nothing else was touched
            assert k in schema or any(k in p for p in props.values()), k
    return check


def _no_betas(call, protocol):
    assert "anthropic-beta" not in call.headers
    assert call.json["max_tokens"] == 32000 and call.json["tools"][0] == TOOL  # body as sent


CASES = {  # profile: (providers.yaml profile value, protocol, extra request fields, checks, refusal)
    "openai": ("openai", "openai", {}, [_cap(16384)], (400, "max_tokens is too large: 32000")),
    "deepseek": ("deepseek", "openai", {}, [_cap(8192)], (400, "Invalid max_tokens value")),
    "moonshot": ("moonshot", "openai", {"extra_body": {"temperature": 0.5}}, [_no("temperature")],
                 (400, "invalid temperature: only 1 is allowed")),
    "zai-openai": ("zai-openai", "openai", {"tool_choice": {"type": "any"}}, [_no("tool_choice")],
                   (400, "Invalid API parameter")),
    "openrouter": ("openrouter", "openai", {},
                   [_stripped("$schema", "exclusiveMinimum", "format")],
                   (400, "Provider returned error")),
    # vLLM's limit is the deployment's: the profile with the cap that fits the mock's context
    "vllm": ("{name: vllm, max_tokens_cap: 16384}", "openai", {},
             [_cap(16384), _stripped("additionalProperties")],
             (400, "This model's maximum context length is 32768 tokens")),
    "ollama": ("ollama", "openai", {}, [_no("reasoning_effort")],
               (400, "does not support thinking")),
    "lmstudio": ("lmstudio", "openai", {}, [_stripped("pattern")],
                 (400, "Pattern must start with '^'")),
    "zai-anthropic": ("zai-anthropic", "anthropic", {}, [_no_betas], (429, "code 1302")),
}


@pytest.fixture(scope="module")
def quirks_mocks():
    mocks = {name: MockUpstream(f"quirks-{name}", quirks=name).start() for name in CASES}
    yield mocks
    for mock in mocks.values():
        mock.stop()


def _providers(tmp_path, mock, profile, protocol):
    base = mock.zai_base_url if protocol == "anthropic" else mock.base_url + "/v1"
    text = "providers:\n"
    for name, extra in (("profiled", f"    profile: {profile}\n"), ("plain", "")):
        text += (f"  {name}:\n    protocol: {protocol}\n    base_url: {base}\n"
                 f"    key_env: PROFILE_KEY\n{extra}"
                 f"    routes: [{{name: {name}-model, model: upstream-{name}}}]\n")
    path = tmp_path / "providers.yaml"
    path.write_text(text)
    return path


def test_every_built_in_profile_has_a_case():
    assert set(CASES) == set(PROFILES)


@pytest.mark.parametrize("name", list(CASES))
def test_the_profile_makes_the_provider_accept_claude_codes_request(name, quirks_mocks, make_shim,
                                                                    tmp_path, keys):
    profile, protocol, extra, checks, (status, text) = CASES[name]
    mock = quirks_mocks[name]
    mock.reset()
    shim = make_shim({"CCP_PROVIDERS_FILE": str(_providers(tmp_path, mock, profile, protocol)),
                      "PROFILE_KEY": KEY})
    client = anthropic.Anthropic(base_url=shim.url, api_key=keys["CLIENT_API_KEY"], max_retries=0,
                                 timeout=30)
    try:
        msg = client.messages.create(model="profiled-model", **REQUEST, **extra)
        assert msg.content[-1].type == "text" and msg.content[-1].text == "PROFILE_OK"
        with pytest.raises(anthropic.APIStatusError) as refused:
            client.messages.create(model="plain-model", **REQUEST, **extra)
    finally:
        client.close()
    on, off = mock.calls
    assert (on.status, off.status) == (200, status)
    assert on.json["model"] == "upstream-profiled" and off.json["model"] == "upstream-plain"
    for check in checks:
        check(on, protocol)
    # the refusal is the provider's, relayed: the same request without the profile fails
    assert refused.value.status_code == status and text in refused.value.message
    if protocol == "openai":  # what the profile changed, the unprofiled request still carried
        assert off.json["max_tokens"] == 32000 and "$schema" in _schema(off, protocol)
    else:
        assert off.headers["anthropic-beta"] == BETAS
    recs = shim.wait_for_records(2)
    by_provider = {r["provider"]: r for r in recs}
    assert by_provider["profiled"]["status"] == 200 and by_provider["plain"]["status"] == status
    if PROFILES[name].touches_body:
        assert by_provider["profiled"]["rewrites"], by_provider["profiled"]
    assert set(by_provider["plain"].get("rewrites") or ()) <= {"model"}  # a route's rename only
    mock.assert_no_unexpected()


def test_a_streamed_answer_through_a_profile(quirks_mocks, make_shim, tmp_path, keys):
    """Streams too: the capped request streams back an answer the SDK assembles."""
    mock = quirks_mocks["deepseek"]
    mock.reset()
    shim = make_shim({"CCP_PROVIDERS_FILE": str(_providers(tmp_path, mock, "deepseek", "openai")),
                      "PROFILE_KEY": KEY})
    client = anthropic.Anthropic(base_url=shim.url, api_key=keys["CLIENT_API_KEY"], max_retries=0,
                                 timeout=30)
    try:
        with client.messages.stream(model="profiled-model", **REQUEST) as stream:
            final = stream.get_final_message()
    finally:
        client.close()
    assert final.content[-1].text == "PROFILE_OK"
    [call] = mock.calls
    assert call.json["max_tokens"] == 8192 and call.json["stream"] is True
