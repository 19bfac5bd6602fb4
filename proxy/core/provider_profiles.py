"""Provider profiles: what a catalog provider's wire needs changed in the requests ccp sends it.

OpenAI-compatible (and Anthropic-compatible) providers refuse things the real APIs accept: a
`max_tokens` above their own cap (Claude Code asks for 32k–128k), fields they do not know or a model
refuses, JSON-schema keywords their tool parser rejects, `anthropic-beta` flags they reject. A
profile names those changes; a catalog provider names a profile, or sets the knobs directly:

    providers:
      deepseek:
        protocol: openai
        base_url: https://api.deepseek.com
        key_env: DEEPSEEK_API_KEY
        profile: deepseek                      # a built-in profile, as it is
      local:
        protocol: openai
        base_url: http://127.0.0.1:8000/v1
        key_env: VLLM_KEY
        profile: {name: vllm, max_tokens_cap: 16384}   # a built-in profile with a knob overridden
      strict:
        ...
        profile: {drop_fields: [temperature], schema_strip: [format]}  # knobs only: "custom"

The knobs (an override replaces the profile's value; a list is not merged):

- `max_tokens_cap` (int, or null for none): `max_tokens` / `max_completion_tokens` above it are
  lowered to it.
- `drop_fields` (list): top-level request fields removed from what is sent, either protocol.
  `cache_control` is also removed where the Anthropic Messages API allows it inside the request:
  content blocks, system blocks and tools.
- `beta_allow` (list, or null = every flag) / `beta_drop` (list): which flags of the client's
  `anthropic-beta` header an Anthropic-protocol provider gets (an empty result sends no header).
- `schema_strip` (list): JSON-schema keywords removed, at any depth, from each tool's schema
  (`tools[].function.parameters` for OpenAI, `tools[].input_schema` for Anthropic). Only keywords:
  a property *named* `format` under `properties` stays, and data (`enum`, `const`'s value,
  `default`, `examples`) is never searched.

Everything here is pure. A provider without a profile (`None`) is sent exactly what it is today, and
`apply_to_request` returns its payload untouched, without copying it: the converted hot path pays
one `is None` test. A profile copies only the parts it changes (the client's payload is never
modified: a fallback builds its own request from it).

Each built-in profile below says what it changes, why, and where each fact comes from (the
provider's documentation or a peer project's issue that recorded the provider's answer). A knob
without such a source is left out, and the comment says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

try:  # tool schemas of a request converted from the body's bytes are orjson Fragments
    import orjson
except ImportError:  # pragma: no cover - a dependency; without it no Fragment is ever built
    orjson = None  # type: ignore[assignment]  # (an optional module: None when missing)

_FRAGMENT = getattr(orjson, "Fragment", None)
KNOBS = ("max_tokens_cap", "drop_fields", "beta_allow", "beta_drop", "schema_strip")
CUSTOM = "custom"  # the name of a profile given by knobs only
MAX_TOKENS_FIELDS = ("max_tokens", "max_completion_tokens")
# fields a request cannot go without: dropping them is a configuration mistake, refused at start
_REQUIRED_FIELDS = frozenset({"model", "messages"})


@dataclass(frozen=True)
class ProviderProfile:
    """The changes one provider's wire needs (see the module docstring for each knob)."""

    name: str
    max_tokens_cap: int | None = None
    drop_fields: frozenset[str] = frozenset()
    beta_allow: frozenset[str] | None = None
    beta_drop: frozenset[str] = frozenset()
    schema_strip: frozenset[str] = frozenset()

    @property
    def touches_body(self) -> bool:
        """Whether the profile changes request bodies (else it changes, at most, a header)."""
        return self.max_tokens_cap is not None or bool(self.drop_fields or self.schema_strip)

    @property
    def filters_betas(self) -> bool:
        return self.beta_allow is not None or bool(self.beta_drop)

    def knobs(self) -> dict[str, Any]:
        """The effective knobs, lists sorted (for `ccp providers` and JSON)."""
        return {
            "max_tokens_cap": self.max_tokens_cap,
            "drop_fields": sorted(self.drop_fields),
            "beta_allow": None if self.beta_allow is None else sorted(self.beta_allow),
            "beta_drop": sorted(self.beta_drop),
            "schema_strip": sorted(self.schema_strip),
        }

    def summary(self) -> str:
        """`NAME (cap 8192; drops a, b; strips c; …)`: one line for the `ccp providers` table."""
        parts = []
        if self.max_tokens_cap is not None:
            parts.append(f"cap {self.max_tokens_cap}")
        if self.drop_fields:
            parts.append("drops " + ", ".join(sorted(self.drop_fields)))
        if self.schema_strip:
            parts.append("strips " + ", ".join(sorted(self.schema_strip)))
        if self.beta_allow is not None:
            parts.append("betas: " + (", ".join(sorted(self.beta_allow)) or "none"))
        if self.beta_drop:
            parts.append("drops betas " + ", ".join(sorted(self.beta_drop)))
        return f"{self.name} ({'; '.join(parts) or 'no changes'})"


def _p(name: str, **knobs: Any) -> ProviderProfile:
    fields: dict[str, Any] = {
        k: frozenset(v) if isinstance(v, (set, list, tuple)) else v for k, v in knobs.items()
    }
    return ProviderProfile(name, **fields)


# --- built-in profiles --------------------------------------------------------------------------
# What the converted request already handles is not repeated here: it never forwards
# `cache_control`, `metadata` (only its `user_id`, as `user`) or `thinking` (as `reasoning_effort`).
PROFILES: dict[str, ProviderProfile] = {
    # OpenAI (api.openai.com). gpt-4o / gpt-4o-mini answer a larger `max_tokens` with 400 "max_tokens
    # is too large: 32000. This model supports at most 16384 completion tokens, whereas you provided
    # 32000." (recorded in enoch3712/ExtractThinker#346, tailcallhq/forgecode#1185,
    # charmbracelet/catwalk#41). Later models allow more (gpt-4.1: 32768, opencode-ai/opencode#140;
    # the o-series and gpt-5 more still): override with `max_tokens_cap: 32768` or `null`.
    "openai": _p("openai", max_tokens_cap=16384),
    # DeepSeek (api.deepseek.com). `deepseek-chat` answers `max_tokens` above 8192 with 400
    # "Invalid max_tokens value, the valid range of max_tokens is [1, 8192]" (deepseek-ai/
    # DeepSeek-V3#69, Gitlawb/openclaude#35, mnfst/llm-gateway#1177 — a Claude Code fork sending
    # its default 32000). `deepseek-reasoner` allows [1, 65536] (Aider-AI/aider#4125): override
    # `max_tokens_cap: 65536` for it. No field or schema keyword is known to be refused: none dropped.
    "deepseek": _p("deepseek", max_tokens_cap=8192),
    # Moonshot / Kimi (api.moonshot.ai). The Kimi K2.x models fix the temperature and refuse any
    # other: 400 "invalid temperature: only 1 is allowed for this model" (countbot-ai/CountBot#61,
    # opencyvis/opencyvis-phone#12, tinyhumansai/openhuman#2082); Moonshot's documentation advises
    # omitting it (quoted in HKUDS/nanobot#4967): dropped. No `max_tokens` cap is recorded: none set.
    "moonshot": _p("moonshot", drop_fields={"temperature"}),
    # Z.AI / Zhipu GLM on the OpenAI protocol (api.z.ai/api/paas/v4). GLM accepts only
    # `tool_choice: "auto"` (the GLM compatibility notes of AgentScope,
    # java.agentscope.io/v2/en/integration/model/glm), which is also what it does without the field:
    # dropped. (Claude Code's `tool_choice: none` then still lets the model call tools.) The same
    # notes strip `stream_options`, `frequency_penalty`, `presence_penalty` as unsupported, but no
    # rejection of them is recorded and `stream_options` asks for the usage chunk: kept. No cap.
    "zai-openai": _p("zai-openai", drop_fields={"tool_choice"}),
    # OpenRouter (openrouter.ai/api/v1). A route may land on Google, whose function declarations
    # take only an OpenAPI subset: 400 "Provider returned error" wrapping "Invalid JSON payload
    # received. Unknown name \"exclusiveMinimum\" …" (musistudio/claude-code-router#1020 via
    # OpenRouter; Claude Code's own tools trip `exclusiveMinimum`, `propertyNames`, `const`:
    # theopenco/llmgateway#1763; `$schema`: router-for-me/CLIProxyAPI#97, PublicAffairs/
    # openai-gemini#70). Gemini's string `format` takes only date / date-time (claude-code-router's
    # blog, "Maybe We Can Do More with the Router"): stripped too. `exclusiveMaximum` goes with its
    # twin (pizza-bot-app/pizza-bot#62). `additionalProperties` is refused on Google's own API
    # (openswarm-ai/openswarm#24) but no rejection through OpenRouter is recorded: kept.
    "openrouter": _p(
        "openrouter",
        schema_strip={
            "$schema",
            "exclusiveMinimum",
            "exclusiveMaximum",
            "propertyNames",
            "const",
            "format",
        },
    ),
    # vLLM (a self-hosted OpenAI-compatible server). LiteLLM's hosted_vllm adapter removes
    # `additionalProperties` from every tool schema before it reaches vLLM (BerriAI/litellm,
    # litellm/llms/hosted_vllm/chat/transformation.py): done here too. vLLM refuses, rather than
    # clamps, a `max_tokens` that does not fit the context left: 400 "This model's maximum context
    # length is … tokens. However, you requested …" (vllm-project/vllm#42474, ogx-ai/ogx#4534) —
    # but the limit is the deployment's `--max-model-len`: set `max_tokens_cap` for yours.
    "vllm": _p("vllm", schema_strip={"additionalProperties"}),
    # Ollama (its OpenAI compatibility, localhost:11434/v1). `reasoning_effort` (what ccp makes of
    # `thinking`) on a model without thinking is 400 "\"llama3.1:8b\" does not support thinking"
    # (Gitlawb/openclaude#1371; also cherry-studio#18744 for Claude Code's adaptive thinking, and
    # ollama/ollama#12561 "think value \"medium\" is not supported for this model"): dropped, so a
    # thinking model thinks by its own default (ollama/ollama#14820). Ollama maps `max_tokens` to its
    # own limit and documents no cap: none set.
    "ollama": _p("ollama", drop_fields={"reasoning_effort"}),
    # LM Studio (localhost:1234/v1). Since 4.19 its tool-call grammar refuses a schema `pattern` not
    # anchored: 400 "JSON schema conversion failed: Pattern must start with '^' and end with '$'"
    # (lmstudio-ai/lmstudio-bug-tracker#2168): `pattern` stripped (it only constrains the model).
    # LM Studio also wants `properties` on every object (laurent22/joplin#16552): that is an addition,
    # not a knob here.
    "lmstudio": _p("lmstudio", schema_strip={"pattern"}),
    # Z.AI's Anthropic-compatible endpoint (api.z.ai/api/anthropic). Requests that carry Claude's
    # beta flags (`interleaved-thinking-2025-05-14`, `fine-grained-tool-streaming-2025-05-14`) are
    # refused deterministically (429 rate_limit_error, code 1302), the same request without them
    # passes (an A/B run in NousResearch/hermes-agent#52455, whose fix sends Z.AI no beta flag at
    # all): no `anthropic-beta` header is sent. Upgrades of Claude Code add flags that compatible
    # providers reject ("invalid beta flag", anthropics/claude-code#49648) — the reason to allow none.
    "zai-anthropic": _p("zai-anthropic", beta_allow=frozenset()),
}


# --- parsing ------------------------------------------------------------------------------------


def _show(value: Any) -> str:
    if isinstance(value, Mapping):
        return "keys " + ", ".join(str(k) for k in value) if value else "{}"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _fail(key: str, problem: str, value: Any) -> ValueError:
    return ValueError(f"{key}: {problem} (value: {_show(value)})")


def _names(value: Any, key: str) -> frozenset[str]:
    if not isinstance(value, list):
        raise _fail(key, "expected a list of names", value)
    out = set()
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            raise _fail(f"{key}[{i}]", "expected a non-empty string", item)
        out.add(item.strip())
    return frozenset(out)


def parse_profile(entry: Any, key: str) -> ProviderProfile:
    """A provider's `profile:` value -> a ProviderProfile; ValueError "<key>: <problem> (value: …)".

    `entry` is a built-in profile's name, or a mapping of an optional `name` (a built-in profile)
    and knobs that override its values. `key` is the key path of the value (`providers.x.profile`).
    """
    name_key = key
    if isinstance(entry, str):
        entry = {"name": entry}
    elif isinstance(entry, Mapping):
        name_key = f"{key}.name"
    if not isinstance(entry, Mapping):
        raise _fail(key, "expected a profile name or a mapping of name and knobs", entry)
    unknown = [k for k in entry if k not in ("name", *KNOBS)]
    if unknown:
        raise _fail(
            f"{key}.{unknown[0]}",
            f"unknown profile knob (known: name, {', '.join(KNOBS)})",
            unknown[0],
        )
    name = entry.get("name")
    if name is None:
        if not any(k in entry for k in KNOBS):
            raise _fail(key, "expected a profile name or at least one knob", entry)
        base = ProviderProfile(CUSTOM)
    else:
        if not isinstance(name, str) or name.strip().lower() not in PROFILES:
            raise _fail(name_key, f"unknown profile (known: {', '.join(PROFILES)})", name)
        base = PROFILES[name.strip().lower()]
    fields: dict[str, Any] = {}
    if "max_tokens_cap" in entry:
        cap = entry["max_tokens_cap"]
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
            raise _fail(f"{key}.max_tokens_cap", "expected a positive integer or null", cap)
        fields["max_tokens_cap"] = cap
    for knob in ("drop_fields", "beta_drop", "schema_strip"):
        if knob in entry:
            fields[knob] = _names(entry[knob], f"{key}.{knob}")
    if "drop_fields" in fields and fields["drop_fields"] & _REQUIRED_FIELDS:
        required = sorted(fields["drop_fields"] & _REQUIRED_FIELDS)[0]
        raise _fail(f"{key}.drop_fields", "a request cannot be sent without this field", required)
    if "beta_allow" in entry:
        allow = entry["beta_allow"]
        fields["beta_allow"] = None if allow is None else _names(allow, f"{key}.beta_allow")
    for knob in ("beta_allow", "beta_drop"):  # flags are compared as lower case
        if fields.get(knob) is not None:
            fields[knob] = frozenset(f.lower() for f in fields[knob])
    return replace(base, **fields) if fields else base


# --- applying -----------------------------------------------------------------------------------


def filter_betas(profile: ProviderProfile | None, value: str) -> str | None:
    """The `anthropic-beta` value to send for the client's `value`: the flags the profile lets
    through, in the client's order, comma-separated; None to send no header."""
    if profile is None or not profile.filters_betas:
        return value
    allow, drop = profile.beta_allow, profile.beta_drop
    kept = [
        f
        for f in (part.strip() for part in value.split(","))
        if f and (allow is None or f.lower() in allow) and f.lower() not in drop
    ]
    return ",".join(kept) or None


# Keywords whose value is a schema, a list of schemas, or a mapping of names to schemas: the only
# places a nested schema can be. Everything else (enum, const, default, examples, …) is data.
_ONE_SCHEMA = frozenset(
    {
        "items",
        "additionalProperties",
        "not",
        "if",
        "then",
        "else",
        "contains",
        "propertyNames",
        "additionalItems",
        "unevaluatedProperties",
        "unevaluatedItems",
        "contentSchema",
    }
)
_SCHEMA_LISTS = frozenset({"anyOf", "oneOf", "allOf", "prefixItems", "items"})
_SCHEMA_MAPS = frozenset(
    {"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"}
)


def strip_schema(schema: Any, keywords: frozenset[str]) -> tuple[Any, int]:
    """(`schema` without `keywords` at any depth, how many were removed); the same object when
    nothing was. Property names (under `properties` and the like) are names, not keywords."""
    if not isinstance(schema, dict):
        return schema, 0
    out: dict | None = None
    removed = 0
    for k, v in schema.items():
        if k in keywords:
            new, n = _DROP, 1
        elif k in _SCHEMA_MAPS and isinstance(v, dict):
            new, n = _strip_each(v, keywords)
        elif k in _SCHEMA_LISTS and isinstance(v, list):
            new, n = _strip_each(v, keywords)
        elif k in _ONE_SCHEMA and isinstance(v, dict):
            new, n = strip_schema(v, keywords)
        else:
            continue
        if n:
            removed += n
            if out is None:
                out = dict(schema)
            if new is _DROP:
                del out[k]
            else:
                out[k] = new
    return (schema if out is None else out), removed


_DROP = object()


def _strip_each(container: dict | list, keywords: frozenset[str]) -> tuple[dict | list, int]:
    """Every sub-schema of a mapping or list stripped; copied only when something changed."""
    out, removed = None, 0
    pairs = container.items() if isinstance(container, dict) else enumerate(container)
    for key, sub in pairs:
        new, n = strip_schema(sub, keywords)
        if n:
            removed += n
            if out is None:
                out = type(container)(container)
            out[key] = new
    return (container if out is None else out), removed


def _strip_fragment(fragment: Any, keywords: frozenset[str]) -> tuple[Any, int]:
    """A Fragment's schema stripped: orjson gives no access to a Fragment's bytes but writes them
    back as they are; read only when one of the keywords appears in them."""
    raw = orjson.dumps(fragment)
    if not any(f'"{k}"'.encode() in raw for k in keywords):
        return fragment, 0
    new, n = strip_schema(orjson.loads(raw), keywords)
    return (new, n) if n else (fragment, 0)


def _strip_tools(tools: list, protocol_out: str, keywords: frozenset[str]) -> tuple[list, int]:
    out, removed = None, 0
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict):
            continue
        holder = tool.get("function") if protocol_out == "openai" else tool
        field = "parameters" if protocol_out == "openai" else "input_schema"
        if not isinstance(holder, dict) or field not in holder:
            continue
        schema = holder[field]
        if _FRAGMENT is not None and isinstance(schema, _FRAGMENT):
            new, n = _strip_fragment(schema, keywords)
        else:
            new, n = strip_schema(schema, keywords)
        if not n:
            continue
        removed += n
        if out is None:
            out = list(tools)
        new_holder = {**holder, field: new}
        out[i] = {**tool, "function": new_holder} if protocol_out == "openai" else new_holder
    return (tools if out is None else out), removed


def _without_cache_control(blocks: Any) -> tuple[Any, int]:
    """A list of blocks (content, system, tools) without their `cache_control`; the same list when
    none has one."""
    if not isinstance(blocks, list):
        return blocks, 0
    out, removed = None, 0
    for i, block in enumerate(blocks):
        if isinstance(block, dict) and "cache_control" in block:
            if out is None:
                out = list(blocks)
            out[i] = {k: v for k, v in block.items() if k != "cache_control"}
            removed += 1
    return (blocks if out is None else out), removed


def _drop_nested_cache_control(payload: dict) -> tuple[dict, int]:
    """`payload` (already a copy) without `cache_control` in system blocks, tools and messages'
    content blocks (tool_result content included); the count removed."""
    removed = 0
    for field in ("system", "tools"):
        new, n = _without_cache_control(payload.get(field))
        if n:
            payload[field], removed = new, removed + n
    messages = payload.get("messages")
    if isinstance(messages, list):
        out = None
        for i, message in enumerate(messages):
            if not isinstance(message, dict):
                continue
            content, n = _without_cache_control(message.get("content"))
            if isinstance(content, list):  # tool_result blocks carry their own content blocks
                inner_out = None
                for j, block in enumerate(content):
                    if isinstance(block, dict) and isinstance(block.get("content"), list):
                        inner, m = _without_cache_control(block["content"])
                        if m:
                            if inner_out is None:
                                inner_out = list(content)
                            inner_out[j] = {**block, "content": inner}
                            n += m
                if inner_out is not None:
                    content = inner_out
            if n:
                if out is None:
                    out = list(messages)
                out[i] = {**message, "content": content}
                removed += n
        if out is not None:
            payload["messages"] = out
    return payload, removed


def apply_to_request(
    profile: ProviderProfile | None, protocol_out: str, payload: dict
) -> tuple[dict, list[str]]:
    """(the payload to send, the changes made, for the usage record's `rewrites`).

    `payload` is the request as it goes to the provider: OpenAI Chat Completions for
    `protocol_out` "openai" (tool schemas may be orjson Fragments), Anthropic Messages for
    "anthropic". It is never modified: a change returns a new dict (sharing what did not change);
    no change returns `payload` itself.
    """
    if profile is None or not profile.touches_body:
        return payload, []
    out: dict | None = None
    changes: list[str] = []
    dropped = profile.drop_fields & payload.keys()
    if dropped:
        out = {k: v for k, v in payload.items() if k not in dropped}
        changes += [f"dropped:{f}" for f in sorted(dropped)]
    if "cache_control" in profile.drop_fields:
        out, n = _drop_nested_cache_control(dict(payload) if out is None else out)
        if n:
            changes.append(f"dropped_cache_control:{n}")
    cap = profile.max_tokens_cap
    if cap is not None:
        for field in MAX_TOKENS_FIELDS:
            value = payload.get(field)
            if (
                isinstance(value, int)
                and not isinstance(value, bool)
                and value > cap
                and field not in dropped
            ):
                if out is None:
                    out = dict(payload)
                out[field] = cap
                if f"max_tokens_cap:{cap}" not in changes:
                    changes.append(f"max_tokens_cap:{cap}")
    if profile.schema_strip and isinstance(payload.get("tools"), list) and "tools" not in dropped:
        source = payload["tools"] if out is None else out["tools"]
        tools, n = _strip_tools(source, protocol_out, profile.schema_strip)
        if n:
            if out is None:
                out = dict(payload)
            out["tools"] = tools
            changes.append(f"schema_stripped:{n}")
    if not changes:
        return payload, []
    assert out is not None  # every change above was made on `out`
    return out, changes
