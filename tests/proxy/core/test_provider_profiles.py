"""Provider profiles: the parser's errors, each rule of apply_to_request and filter_betas."""
import copy

import orjson
import pytest

from proxy.core.provider_profiles import (
    CUSTOM,
    PROFILES,
    ProviderProfile,
    apply_to_request,
    filter_betas,
    parse_profile,
    strip_schema,
)

pytestmark = pytest.mark.quick

KEY = "providers.x.profile"

SCHEMA = {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
          "additionalProperties": False,
          "properties": {
              "format": {"type": "string", "format": "uri", "enum": ["format", "pattern"]},
              "count": {"type": "integer", "exclusiveMinimum": 0, "default": {"format": "x"}},
              "tags": {"type": "array", "items": {"type": "string", "pattern": "\\S",
                                                  "format": "email"}},
              "either": {"anyOf": [{"type": "string", "format": "date"}, {"type": "null"}]},
              "map": {"type": "object", "propertyNames": {"pattern": "^[a-z]+$"},
                      "additionalProperties": {"type": "string", "format": "uuid"}}},
          "required": ["format"]}


def openai_payload(schema=SCHEMA, **extra):
    return {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 32000,
            "tools": [{"type": "function", "function": {"name": "t", "description": "d",
                                                        "parameters": schema}}], **extra}


# --- parsing ------------------------------------------------------------------------------------

def test_a_name_gives_the_built_in_profile():
    assert parse_profile("deepseek", KEY) is PROFILES["deepseek"]
    assert parse_profile({"name": "DeepSeek"}, KEY) is PROFILES["deepseek"]


def test_knobs_override_the_named_profile_and_lists_replace():
    p = parse_profile({"name": "deepseek", "max_tokens_cap": 65536, "drop_fields": ["top_p"]}, KEY)
    assert (p.name, p.max_tokens_cap, p.drop_fields) == ("deepseek", 65536, {"top_p"})
    assert parse_profile({"name": "openai", "max_tokens_cap": None}, KEY).max_tokens_cap is None
    assert parse_profile({"name": "vllm", "schema_strip": []}, KEY).schema_strip == frozenset()


def test_knobs_only_make_a_custom_profile():
    p = parse_profile({"beta_allow": ["Claude-Code-20250219"], "beta_drop": ["x"]}, KEY)
    assert p == ProviderProfile(CUSTOM, beta_allow=frozenset({"claude-code-20250219"}),
                                beta_drop=frozenset({"x"}))
    assert not p.touches_body and p.filters_betas


@pytest.mark.parametrize("entry, message", [
    ("nope", f"{KEY}: unknown profile (known: openai, "),
    ({"name": "nope"}, f"{KEY}.name: unknown profile"),
    ({"name": 3}, f"{KEY}.name: unknown profile"),
    ({"name": "openai", "max_token_cap": 1}, f"{KEY}.max_token_cap: unknown profile knob"),
    ({}, f"{KEY}: expected a profile name or at least one knob"),
    (7, f"{KEY}: expected a profile name or a mapping"),
    ({"max_tokens_cap": 0}, f"{KEY}.max_tokens_cap: expected a positive integer or null (value: 0)"),
    ({"max_tokens_cap": True}, f"{KEY}.max_tokens_cap: expected a positive integer"),
    ({"max_tokens_cap": "8k"}, f"{KEY}.max_tokens_cap: expected a positive integer"),
    ({"drop_fields": "thinking"}, f"{KEY}.drop_fields: expected a list of names"),
    ({"drop_fields": ["ok", ""]}, f"{KEY}.drop_fields[1]: expected a non-empty string"),
    ({"drop_fields": ["messages"]}, f"{KEY}.drop_fields: a request cannot be sent without"),
    ({"schema_strip": [1]}, f"{KEY}.schema_strip[0]: expected a non-empty string"),
    ({"beta_allow": "all"}, f"{KEY}.beta_allow: expected a list of names"),
])
def test_parse_errors_name_the_key_and_the_value(entry, message):
    with pytest.raises(ValueError) as info:
        parse_profile(entry, KEY)
    assert str(info.value).startswith(message) and "(value: " in str(info.value)


def test_every_built_in_profile_changes_something_and_summarises():
    for name, p in PROFILES.items():
        assert p.name == name and (p.touches_body or p.filters_betas), name
        assert p.summary().startswith(f"{name} (") and "no changes" not in p.summary()
    assert PROFILES["deepseek"].summary() == "deepseek (cap 8192)"
    assert PROFILES["zai-anthropic"].summary() == "zai-anthropic (betas: none)"
    assert PROFILES["openrouter"].knobs()["schema_strip"] == sorted(PROFILES["openrouter"].schema_strip)


# --- the no-profile fast path ---------------------------------------------------------------------

def test_no_profile_and_a_header_only_profile_return_the_same_object():
    payload = openai_payload()
    for profile in (None, PROFILES["zai-anthropic"]):
        out, changes = apply_to_request(profile, "openai", payload)
        assert out is payload and changes == []


def test_a_profile_with_nothing_to_change_returns_the_same_object():
    payload = openai_payload(schema={"type": "object", "properties": {}})
    payload["max_tokens"] = 100
    out, changes = apply_to_request(PROFILES["openai"], "openai", payload)
    assert out is payload and changes == []
    assert apply_to_request(PROFILES["openrouter"], "openai", payload)[0] is payload


# --- max_tokens ---------------------------------------------------------------------------------

@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
def test_the_cap_lowers_max_tokens_and_leaves_the_input_alone(field):
    payload = {"model": "m", "messages": [], field: 32000}
    out, changes = apply_to_request(PROFILES["deepseek"], "openai", payload)
    assert out[field] == 8192 and changes == ["max_tokens_cap:8192"]
    assert payload[field] == 32000  # never modified
    assert apply_to_request(PROFILES["deepseek"], "openai", {**payload, field: 8192})[1] == []


def test_the_cap_applies_to_anthropic_requests_too():
    out, changes = apply_to_request(parse_profile({"max_tokens_cap": 4096}, KEY), "anthropic",
                                    {"model": "m", "messages": [], "max_tokens": 64000})
    assert out["max_tokens"] == 4096 and changes == ["max_tokens_cap:4096"]


# --- dropped fields -----------------------------------------------------------------------------

def test_dropped_fields_are_removed_and_named():
    p = parse_profile({"drop_fields": ["reasoning_effort", "temperature", "metadata"]}, KEY)
    payload = openai_payload(reasoning_effort="low", temperature=0.2)
    out, changes = apply_to_request(p, "openai", payload)
    assert "reasoning_effort" not in out and "temperature" not in out
    assert changes == ["dropped:reasoning_effort", "dropped:temperature"]
    assert payload["reasoning_effort"] == "low" and out["tools"] is payload["tools"]


def test_dropping_cache_control_removes_it_where_anthropic_allows_it():
    payload = {
        "model": "m", "max_tokens": 10, "cache_control": {"type": "ephemeral"},
        "system": [{"type": "text", "text": "s", "cache_control": {"type": "ephemeral"}}],
        "tools": [{"name": "t", "input_schema": {"type": "object"},
                   "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
        "messages": [
            {"role": "user", "content": "plain"},
            {"role": "user", "content": [
                {"type": "text", "text": "a", "cache_control": {"type": "ephemeral"}},
                {"type": "tool_result", "tool_use_id": "x", "content": [
                    {"type": "text", "text": "r", "cache_control": {"type": "ephemeral"}}]}]}]}
    before = copy.deepcopy(payload)
    out, changes = apply_to_request(parse_profile({"drop_fields": ["cache_control"]}, KEY),
                                    "anthropic", payload)
    assert "cache_control" not in orjson.dumps(out).decode()
    assert changes == ["dropped:cache_control", "dropped_cache_control:4"]
    assert payload == before  # the client's request is untouched
    assert out["messages"][0] is payload["messages"][0]  # what did not change is shared
    assert out["messages"][1]["content"][1]["content"][0] == {"type": "text", "text": "r"}


# --- schema stripping ---------------------------------------------------------------------------

def test_strip_removes_keywords_at_every_depth_but_not_property_names_or_data():
    out, n = strip_schema(SCHEMA, frozenset({"format", "pattern", "$schema"}))
    assert n == 7  # $schema, 4 formats (uri, email, date, uuid), 2 patterns
    props = out["properties"]
    assert set(props) == set(SCHEMA["properties"])  # the property named `format` stays
    assert props["format"] == {"type": "string", "enum": ["format", "pattern"]}
    assert props["count"]["default"] == {"format": "x"}  # data is never searched
    assert props["tags"]["items"] == {"type": "string"}
    assert props["either"]["anyOf"][0] == {"type": "string"}
    assert props["map"]["propertyNames"] == {} and props["map"]["additionalProperties"] == {
        "type": "string"}
    assert out["required"] == ["format"] and "$schema" not in out
    assert SCHEMA["properties"]["format"]["format"] == "uri"  # copy on write
    assert strip_schema(SCHEMA, frozenset({"nothing"}))[0] is SCHEMA


def test_schema_strip_on_openai_and_anthropic_tools():
    p = parse_profile({"schema_strip": ["exclusiveMinimum", "$schema"]}, KEY)
    out, changes = apply_to_request(p, "openai", openai_payload())
    params = out["tools"][0]["function"]["parameters"]
    assert "$schema" not in params and "exclusiveMinimum" not in params["properties"]["count"]
    assert changes == ["schema_stripped:2"] and out["tools"][0]["function"]["name"] == "t"
    anth = {"model": "m", "max_tokens": 1, "messages": [],
            "tools": [{"name": "t", "input_schema": SCHEMA}, {"name": "u", "input_schema": {}}]}
    out, changes = apply_to_request(p, "anthropic", anth)
    assert "$schema" not in out["tools"][0]["input_schema"] and changes == ["schema_stripped:2"]
    assert out["tools"][1] is anth["tools"][1]


def test_fragment_schemas_are_read_only_when_a_keyword_appears():
    fragment = orjson.Fragment(orjson.dumps(SCHEMA))
    payload = openai_payload(schema=fragment)
    out, changes = apply_to_request(PROFILES["openrouter"], "openai", payload)
    params = out["tools"][0]["function"]["parameters"]
    assert isinstance(params, dict) and "$schema" not in params
    assert "format" in params["properties"] and "format" not in params["properties"]["format"]
    assert changes == ["schema_stripped:7"]  # $schema, 4 formats, exclusiveMinimum, propertyNames
    assert payload["tools"][0]["function"]["parameters"] is fragment
    clean = orjson.Fragment(b'{"type":"object","properties":{"a":{"type":"string"}}}')
    untouched = openai_payload(schema=clean)
    out, changes = apply_to_request(PROFILES["openrouter"], "openai", untouched)
    assert out is untouched and changes == []
    # the rewritten request writes as JSON, fragments and dicts alike
    assert orjson.loads(orjson.dumps(out))["tools"][0]["function"]["parameters"]["type"] == "object"


def test_all_rules_together_report_each_change():
    p = parse_profile({"max_tokens_cap": 8192, "drop_fields": ["reasoning_effort"],
                       "schema_strip": ["format"]}, KEY)
    out, changes = apply_to_request(p, "openai", openai_payload(reasoning_effort="high"))
    assert changes == ["dropped:reasoning_effort", "max_tokens_cap:8192", "schema_stripped:4"]
    assert out["max_tokens"] == 8192


# --- anthropic-beta -----------------------------------------------------------------------------

def test_filter_betas():
    value = "claude-code-20250219, Interleaved-Thinking-2025-05-14,made-up-2099-01-01"
    assert filter_betas(None, value) is value
    assert filter_betas(PROFILES["deepseek"], value) is value
    assert filter_betas(PROFILES["zai-anthropic"], value) is None
    drop = parse_profile({"beta_drop": ["interleaved-thinking-2025-05-14"]}, KEY)
    assert filter_betas(drop, value) == "claude-code-20250219,made-up-2099-01-01"
    allow = parse_profile({"beta_allow": ["claude-code-20250219", "made-up-2099-01-01"],
                           "beta_drop": ["made-up-2099-01-01"]}, KEY)
    assert filter_betas(allow, value) == "claude-code-20250219"
    assert filter_betas(allow, " , ") is None


# --- headers ------------------------------------------------------------------------------------

def test_anthropic_provider_headers_carry_only_the_betas_the_profile_lets_through():
    from proxy.core.headers import LaneCredentials, upstream_request_headers
    client = [("anthropic-beta", "claude-code-20250219,interleaved-thinking-2025-05-14"),
              ("anthropic-version", "2023-06-01"), ("x-api-key", "client-key")]
    creds = LaneCredentials(zai_api_key="zkey")
    plain = upstream_request_headers("zai", client, creds)
    assert plain["anthropic-beta"] == "claude-code-20250219,interleaved-thinking-2025-05-14"
    none = upstream_request_headers("zai", client, creds, profile=PROFILES["zai-anthropic"])
    assert "anthropic-beta" not in none and none["anthropic-version"] == "2023-06-01"
    assert none["x-api-key"] == "zkey"
    some = upstream_request_headers("zai", client, creds, profile=parse_profile(
        {"beta_drop": ["interleaved-thinking-2025-05-14"]}, KEY))
    assert some["anthropic-beta"] == "claude-code-20250219"
    lane = upstream_request_headers("anthropic", client, LaneCredentials(),
                                    profile=PROFILES["zai-anthropic"])
    assert "anthropic-beta" not in lane and lane["x-api-key"] == "client-key"
