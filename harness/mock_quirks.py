"""Provider quirks for the mock upstream: what a real provider refuses, and how its answers differ.

`MockUpstream(name, quirks="deepseek")` answers like that provider would: `rejection()` runs before
a reply is built and names the status and error body the provider answers a request it refuses
with; `reshape()` rewrites the mock's own reply (a JSON dict, or the SSE chunks of a stream) into the
provider's dialect. One entry per profile of `proxy.core.provider_profiles`, so a scenario can show that
a profile is what makes the provider accept Claude Code's requests.

Every shape here is one a provider was seen to send, and its comment names where it was recorded
(a provider's documentation, or a peer project's issue quoting the provider's answer). Where a
record has the trigger but not the text, or the text but not the trigger, the comment says which
part is the mock's. Token counts stay the mock's own (synthetic); only the field names are the
provider's. The checks read the mock's request as written here, not through the shim's code, so a
test of the shim cannot pass by sharing its bugs.

Pure functions, no I/O.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from harness.mock_wire import compact_json

# The mock's deployment assumptions where a limit is the operator's, not the provider's.
VLLM_MAX_MODEL_LEN = 32768  # as if started with `vllm serve … --max-model-len 32768`

Rejection = tuple[int, dict[str, Any]]


def _openai_error(message: str, type_: str = "invalid_request_error", param: Any = None,
                  code: Any = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def _max_tokens(payload: dict) -> int | None:
    for field in ("max_tokens", "max_completion_tokens"):
        value = payload.get(field)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def _schemas(payload: dict, protocol: str) -> list[tuple[int, Any]]:
    """(index, schema) of each tool in the request."""
    out = []
    for i, tool in enumerate(payload.get("tools") or []):
        if not isinstance(tool, dict):
            continue
        schema = (tool.get("function") or {}).get("parameters") if protocol == "openai" \
            else tool.get("input_schema")
        out.append((i, schema))
    return out


# where a JSON schema nests schemas (a keyword's value is data anywhere else)
_NAMED = ("properties", "patternProperties", "$defs", "definitions")
_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems", "items")
_ONE = ("items", "additionalProperties", "not", "if", "then", "else", "contains", "propertyNames")


def keyword_uses(schema: Any, path: str = "") -> list[tuple[str, str, Any]]:
    """(path, keyword, value) for every keyword used at any depth of `schema`; property names
    under `properties` (and the like) are part of the path, not keywords."""
    if not isinstance(schema, dict):
        return []
    found = []
    for key, value in schema.items():
        found.append((path, key, value))
        if key in _NAMED and isinstance(value, dict):
            for name, sub in value.items():
                found += keyword_uses(sub, f"{path}.{key}[{name}]")
        elif key in _LISTS and isinstance(value, list):
            for j, sub in enumerate(value):
                found += keyword_uses(sub, f"{path}.{key}[{j}]")
        elif key in _ONE and isinstance(value, dict):
            found += keyword_uses(value, f"{path}.{key}")
    return found


# --- what each provider refuses -----------------------------------------------------------------

def _openai(payload: dict, headers: dict, prompt_tokens: int) -> Rejection | None:
    # gpt-4o: 400 with this text, type, param and code (tailcallhq/forgecode#1185,
    # charmbracelet/catwalk#41; the 32000 case in enoch3712/ExtractThinker#346).
    asked = _max_tokens(payload)
    if asked is not None and asked > 16384:
        field = "max_tokens" if "max_tokens" in payload else "max_completion_tokens"
        return 400, _openai_error(
            f"max_tokens is too large: {asked}. This model supports at most 16384 completion "
            f"tokens, whereas you provided {asked}.", param=field, code="invalid_value")
    return None


def _deepseek(payload: dict, headers: dict, prompt_tokens: int) -> Rejection | None:
    # deepseek-chat: 400, exactly this body (deepseek-ai/DeepSeek-V3#69, Gitlawb/openclaude#35,
    # mnfst/llm-gateway#1177).
    asked = payload.get("max_tokens")
    if isinstance(asked, int) and not isinstance(asked, bool) and not 1 <= asked <= 8192:
        return 400, _openai_error("Invalid max_tokens value, the valid range of max_tokens is "
                                  "[1, 8192]", code="invalid_request_error")
    return None


def _moonshot(payload: dict, headers: dict, prompt_tokens: int) -> Rejection | None:
    # Kimi K2.x: 400, exactly this body (countbot-ai/CountBot#61, opencyvis/opencyvis-phone#12,
    # tinyhumansai/openhuman#2082). (Non-thinking mode allows 0.6 only, HKUDS/nanobot#4967: the
    # mock is in the default, thinking, mode.)
    temperature = payload.get("temperature")
    if temperature is not None and temperature != 1:
        return 400, {"error": {"message": "invalid temperature: only 1 is allowed for this model",
                               "type": "invalid_request_error"}}
    return None


def _zai_openai(payload: dict, headers: dict, prompt_tokens: int) -> Rejection | None:
    # GLM accepts only tool_choice "auto" (AgentScope's GLM notes,
    # java.agentscope.io/v2/en/integration/model/glm); the body is Z.AI's answer to a parameter it
    # refuses, code 1210 (cline/cline#9939). Which answer GLM gives to this parameter is not
    # recorded: the pairing of trigger and body is the mock's.
    choice = payload.get("tool_choice")
    if choice is not None and choice != "auto":
        return 400, {"error": {"code": "1210",
                               "message": "Invalid API parameter, please check the documentation."}}
    return None


# Keywords Google's function declarations refuse, as recorded for Claude Code's tools
# (theopenco/llmgateway#1763: exclusiveMinimum, propertyNames, const), `$schema`
# (router-for-me/CLIProxyAPI#97), exclusiveMaximum (pizza-bot-app/pizza-bot#62).
GEMINI_UNKNOWN = ("$schema", "exclusiveMinimum", "exclusiveMaximum", "propertyNames", "const")


def _openrouter(payload: dict, headers: dict, prompt_tokens: int) -> Rejection | None:
    # A route landing on Google: OpenRouter's wrapper (musistudio/claude-code-router#1020,
    # hotovo/aider-desk#513) around Google's INVALID_ARGUMENT (hotovo/aider-desk#827), one line per
    # unknown field, as Google lists them.
    lines = []
    for i, schema in _schemas(payload, "openai"):
        for path, keyword, _ in keyword_uses(schema):
            if keyword in GEMINI_UNKNOWN:
                lines.append(f"Invalid JSON payload received. Unknown name \"{keyword}\" at "
                             f"'tools[0].function_declarations[{i}].parameters{path}': "
                             f"Cannot find field.")
    if not lines:
        return None
    raw = json.dumps({"error": {"code": 400, "message": "\n".join(lines),
                                "status": "INVALID_ARGUMENT"}}, indent=2)
    return 400, {"error": {"message": "Provider returned error", "code": 400,
                           "metadata": {"raw": raw, "provider_name": "Google"}},
                 "user_id": "user_mock"}


def _vllm_error(message: str) -> dict[str, Any]:
    # vLLM's error object (ogx-ai/ogx#4534 quotes it whole)
    return {"object": "error", "message": message, "type": "BadRequestError", "param": None,
            "code": 400}


def _vllm(payload: dict, headers: dict, prompt_tokens: int) -> Rejection | None:
    # A Qwen chat template raises on a system message after the first one (vllm-project/vllm#41114,
    # gptme/gptme#3779: "System message must be at the beginning.", 400).
    messages = payload.get("messages") or []
    if any(isinstance(m, dict) and m.get("role") == "system" for m in messages[1:]):
        return 400, _vllm_error("System message must be at the beginning.")
    # vLLM refuses a max_tokens that does not fit the context (vllm-project/vllm#42474; the text as
    # in ogx-ai/ogx#4534). The limit is the mock deployment's (VLLM_MAX_MODEL_LEN).
    asked = _max_tokens(payload)
    if asked is not None and asked + prompt_tokens > VLLM_MAX_MODEL_LEN:
        return 400, _vllm_error(
            f"This model's maximum context length is {VLLM_MAX_MODEL_LEN} tokens. However, you "
            f"requested {asked + prompt_tokens} tokens ({prompt_tokens} in the messages, {asked} "
            f"in the completion). Please reduce the length of the messages or completion.")
    return None


def _ollama(payload: dict, headers: dict, prompt_tokens: int) -> Rejection | None:
    # A model without thinking, asked to think (Gitlawb/openclaude#1371: 400, this body;
    # CherryHQ/cherry-studio#18744). "none" turns thinking off and is accepted (ollama/ollama#14820).
    effort = payload.get("reasoning_effort")
    if effort is not None and effort != "none":
        return 400, _openai_error(f"\"{payload.get('model')}\" does not support thinking")
    return None


def _lmstudio(payload: dict, headers: dict, prompt_tokens: int) -> Rejection | None:
    # LM Studio 4.19's tool grammar (lmstudio-ai/lmstudio-bug-tracker#2168: this body, 400).
    for _, schema in _schemas(payload, "openai"):
        for _, keyword, value in keyword_uses(schema):
            if keyword == "pattern" and isinstance(value, str) \
                    and not (value.startswith("^") and value.endswith("$")):
                return 400, {"error": {"code": 400, "type": "invalid_request_error", "message":
                                       "Unable to generate parser for this template. Automatic "
                                       "parser generation failed: JSON schema conversion failed:"
                                       "\nPattern must start with '^' and end with '$'"}}
    return None


# The flags NousResearch/hermes-agent#52455 saw Z.AI's Anthropic endpoint refuse (A/B: 0/5 with
# them, 5/5 without), answered 429 rate_limit_error with code 1302. The message text is not quoted
# there: the mock's says what it is.
ZAI_REFUSED_BETAS = ("interleaved-thinking-2025-05-14", "fine-grained-tool-streaming-2025-05-14")


def _zai_anthropic(payload: dict, headers: dict, prompt_tokens: int) -> Rejection | None:
    flags = {f.strip().lower() for f in headers.get("anthropic-beta", "").split(",")}
    refused = [f for f in ZAI_REFUSED_BETAS if f in flags]
    if refused:
        return 429, {"type": "error", "error": {
            "type": "rate_limit_error", "code": "1302",
            "message": f"mock zai-anthropic: refused with beta flag {refused[0]} (code 1302)"}}
    return None


# --- how each provider's answers differ ---------------------------------------------------------

def _chunks(events: list[bytes], edit: Callable[[dict], dict | None]) -> list[bytes]:
    """Each `data: {json}` chunk through `edit` (None drops it); other lines are kept."""
    out = []
    for event in events:
        if event.startswith(b"data: {"):
            chunk = edit(json.loads(event[6:]))
            if chunk is not None:
                out.append(f"data: {compact_json(chunk)}\n\n".encode())
        else:
            out.append(event)
    return out


def _message_or_delta(chunk: dict):
    for choice in chunk.get("choices") or []:
        yield choice, choice.get("message") or choice.get("delta") or {}


def _deepseek_usage(usage: dict) -> dict:
    # DeepSeek's cache counters (docs.stigg.io's DeepSeek page; the ds-api crate's Usage type):
    # prompt_cache_hit_tokens + prompt_cache_miss_tokens = prompt_tokens. Half a hit, here.
    hit = usage["prompt_tokens"] // 2
    return {**usage, "prompt_cache_hit_tokens": hit,
            "prompt_cache_miss_tokens": usage["prompt_tokens"] - hit}


def _moonshot_usage(usage: dict) -> dict:
    # Kimi reports cache hits as a top-level `cached_tokens` (platform.kimi.ai/docs/api/chat, as
    # quoted in aallan/vera-bench#97 and earendil-works/pi#8119). Half a hit, here.
    return {**usage, "cached_tokens": usage["prompt_tokens"] // 2}


def _moonshot_ids(chunk: dict, counter: dict) -> dict:
    # Kimi's own tool-call ids, `functions.<name>:<index>` (openclaw/openclaw#70030,
    # MoonshotAI/kimi-code#2503). In a stream the name comes with the id, in the first fragment.
    for _, part in _message_or_delta(chunk):
        for call in part.get("tool_calls") or []:
            if "id" in call:
                name = (call.get("function") or {}).get("name", "")
                call["id"] = f"functions.{name}:{counter.setdefault('n', 0)}"
                counter["n"] += 1
    return chunk


def _reshape_moonshot(reply):
    counter: dict = {}
    if isinstance(reply, dict):
        reply = _moonshot_ids(reply, counter)
        reply["usage"] = _moonshot_usage(reply["usage"])
        return reply
    # Streamed usage arrives inside the last choice (`choices[0].usage`), not in a chunk of its
    # own (earendil-works/pi#2017).
    usage_only = [json.loads(e[6:]) for e in reply
                  if e.startswith(b"data: {") and b'"choices":[]' in e]
    finish_seen = {"done": False}

    def edit(chunk: dict) -> dict | None:
        if not chunk.get("choices") and chunk.get("usage"):
            return None
        chunk = _moonshot_ids(chunk, counter)
        choice = chunk["choices"][0] if chunk.get("choices") else None
        if choice and choice.get("finish_reason") and usage_only and not finish_seen["done"]:
            choice["usage"] = _moonshot_usage(usage_only[0]["usage"])
            finish_seen["done"] = True
        return chunk
    return _chunks(reply, edit)


def _reshape_deepseek(reply):
    if isinstance(reply, dict):
        reply["usage"] = _deepseek_usage(reply["usage"])
        return reply

    def edit(chunk: dict) -> dict:
        if chunk.get("usage"):
            chunk["usage"] = _deepseek_usage(chunk["usage"])
        return chunk
    return _chunks(reply, edit)


def _reshape_vllm(reply):
    # vLLM adds `stop_reason` (the stop string or token that ended the answer, else null) to each
    # choice (vLLM's OpenAI protocol; issue 17 point 2 relies on it).
    def edit(chunk: dict) -> dict:
        for choice in chunk.get("choices") or []:
            choice.setdefault("stop_reason", None)
        return chunk
    return edit(reply) if isinstance(reply, dict) else _chunks(reply, edit)


def _reshape_ollama(reply):
    # Ollama's OpenAI endpoint names the thoughts `reasoning` (ollama/ollama#15288).
    def edit(chunk: dict) -> dict:
        for _, part in _message_or_delta(chunk):
            if "reasoning_content" in part:
                part["reasoning"] = part.pop("reasoning_content")
        return chunk
    return edit(reply) if isinstance(reply, dict) else _chunks(reply, edit)


# OpenRouter's keep-alive SSE comment (openrouter.ai/docs/api_reference/streaming).
OPENROUTER_COMMENT = b": OPENROUTER PROCESSING\n\n"


def _reshape_openrouter(reply):
    return reply if isinstance(reply, dict) else [OPENROUTER_COMMENT, *reply]


def _same(reply):
    return reply


class Quirks:
    """One provider's quirks: its protocol, what it refuses, how its answers differ."""

    def __init__(self, protocol: str, refuse: Callable[[dict, dict, int], Rejection | None],
                 reshape: Callable[[Any], Any] = _same) -> None:
        self.protocol, self.refuse, self.reshape = protocol, refuse, reshape


QUIRKS: dict[str, Quirks] = {
    "openai": Quirks("openai", _openai),
    "deepseek": Quirks("openai", _deepseek, _reshape_deepseek),
    "moonshot": Quirks("openai", _moonshot, _reshape_moonshot),
    "zai-openai": Quirks("openai", _zai_openai),
    "openrouter": Quirks("openai", _openrouter, _reshape_openrouter),
    "vllm": Quirks("openai", _vllm, _reshape_vllm),
    "ollama": Quirks("openai", _ollama, _reshape_ollama),
    "lmstudio": Quirks("openai", _lmstudio),
    "zai-anthropic": Quirks("anthropic", _zai_anthropic),
}


def check_name(quirks: str | None) -> str | None:
    """`quirks` when it names an entry of QUIRKS (or is None); ValueError otherwise."""
    if quirks is not None and quirks not in QUIRKS:
        raise ValueError(f"unknown quirks {quirks!r} (known: {', '.join(QUIRKS)})")
    return quirks


def rejection(quirks: str, protocol: str, payload: dict, headers: dict[str, str],
              prompt_tokens: int) -> Rejection | None:
    """(status, error body) when the provider refuses this request, else None. A request of the
    other protocol (the mock serves both) is not the provider's: never refused."""
    entry = QUIRKS[quirks]
    if protocol != entry.protocol:
        return None
    return entry.refuse(payload, {k.lower(): v for k, v in headers.items()}, prompt_tokens)


def reshape(quirks: str, protocol: str, reply: list[bytes] | dict) -> list[bytes] | dict:
    """The mock's reply in the provider's dialect (a new object; `reply` may be changed)."""
    entry = QUIRKS[quirks]
    if protocol != entry.protocol:
        return reply
    return entry.reshape(reply)
