"""Any bytes a JSON parser accepts are handled: valid request shapes of both protocols, mutated.

Hypothesis builds Anthropic Messages and OpenAI Chat Completions requests of the shapes clients
send (text, image, tool_use, tool_result and thinking blocks; system, tools, tool_choice, stop,
thinking, metadata, temperature), then mutates them: a field anywhere swapped for a value of
another type, a string given lone UTF-16 surrogates, NUL, odd escapes or a secret, and the JSON text
itself re-spelled (every `/` as `\\/`, keys as `\\u` escapes, other whitespace, UTF-16). Each goes to
a real shim with sessions and the body tee on, over every route kind: the anthropic lane and the
zai lane passed through, an OpenAI-protocol provider converted to and from, and the OpenAI client
protocol converted to the Anthropic lanes and passed through to the OpenAI provider.

What must hold, over >= 10,000 requests: never a 5xx the upstream did not cause, never a traceback
in the shim's stderr, a 400 in the protocol's error shape (a conversion's names the field), exactly
one usage record per request, every line and file the shim wrote valid JSON, and no credential in
any of them. One figure line is printed: cases, records, 400s, 500s, tracebacks.
"""
from __future__ import annotations

import asyncio
import collections
import copy
import json
import re
import time

import aiohttp
import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from proxy.core.jsontext import escape_surrogates

pytestmark = [pytest.mark.faults]

CASES = 10_000  # one request per hypothesis example
BATCH = 200  # requests gathered, then sent concurrently
CONCURRENCY = 24
GLM_KEY = "glm-key-any-bytes-7c1d9e"
ADMIN = "admin-token-any-bytes-5e2a"
SESSION = "sess-token-any-bytes-91f3b"
CLIENT_KEY = "client-key-any-bytes-3a8c"
SECRETS = (GLM_KEY, ADMIN, SESSION, CLIENT_KEY)
KNOWN = (GLM_KEY, ADMIN, SESSION)  # secrets the shim knows whoever asks: masked in any body too

# --- strategies: valid shapes ---------------------------------------------------------------------

ODD = ["\ud800", "\udbff", "\udc00", "\udfff", "\ude00\ud83d", "\x00", "nul\x00byte", "\u2028\u2029",
       "\ufeff", "\uffff", "\\", '"', "\x7f\x1b", "é日😀", "\\u0000", "\\ud800", "</script>", "\t\r\n"]
odd_text = st.lists(st.one_of(st.text(max_size=4), st.sampled_from(ODD)), min_size=1, max_size=4).map(
    "".join)
texts = st.one_of(st.text(max_size=12), odd_text)
ids = st.sampled_from(["toolu_01abc", "call_1", "", "functions.Bash:0", "toolu_ccp_x\ud800"])
tool_names = st.sampled_from(["get", "Bash", "mcp__server__a_very_long_tool_name_" + "x" * 40, "a b"])
schema = st.just({"type": "object", "properties": {"q": {"type": "string"}}})
image_source = st.one_of(
    st.fixed_dictionaries({"type": st.just("base64"), "media_type": st.just("image/png"),
                           "data": st.just("iVBORw0KGgo=")}),
    st.fixed_dictionaries({"type": st.just("url"), "url": st.just("https://example.com/a.png")}))
a_text = st.fixed_dictionaries({"type": st.just("text"), "text": texts})
a_image = st.fixed_dictionaries({"type": st.just("image"), "source": image_source})
a_block = st.one_of(
    a_text, a_image,
    st.fixed_dictionaries({"type": st.just("tool_use"), "id": ids, "name": tool_names,
                           "input": st.fixed_dictionaries({"q": texts})}),
    st.fixed_dictionaries({"type": st.just("tool_result"), "tool_use_id": ids,
                           "content": st.one_of(texts, st.lists(st.one_of(a_text, a_image), max_size=2)),
                           "is_error": st.booleans()}),
    st.fixed_dictionaries({"type": st.just("thinking"), "thinking": texts, "signature": st.just("sig")}))
a_message = st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant"]),
                                   "content": st.one_of(texts, st.lists(a_block, max_size=3))})
anthropic_body = st.fixed_dictionaries(
    {"max_tokens": st.integers(1, 64), "messages": st.lists(a_message, min_size=1, max_size=3)},
    optional={"system": st.one_of(texts, st.lists(a_text, max_size=2)), "stream": st.booleans(),
              "temperature": st.floats(0, 1), "top_p": st.floats(0, 1),
              "stop_sequences": st.lists(texts, max_size=2),
              "metadata": st.fixed_dictionaries({"user_id": texts}),
              "tools": st.lists(st.fixed_dictionaries({"name": tool_names, "description": texts,
                                                       "input_schema": schema}), max_size=2),
              "tool_choice": st.sampled_from([{"type": "auto"}, {"type": "any"},
                                              {"type": "tool", "name": "get"}, {"type": "none"}]),
              "thinking": st.one_of(st.just({"type": "adaptive"}), st.fixed_dictionaries(
                  {"type": st.just("enabled"), "budget_tokens": st.integers(1024, 32000)}))})
image_urls = st.sampled_from(["https://example.com/a.png", "data:image/png;base64,iVBO"])
o_part = st.one_of(st.fixed_dictionaries({"type": st.just("text"), "text": texts}),
                   st.fixed_dictionaries({"type": st.just("image_url"),
                                          "image_url": st.fixed_dictionaries({"url": image_urls})}))
o_call = st.fixed_dictionaries({"id": ids, "type": st.just("function"), "function": st.fixed_dictionaries(
    {"name": tool_names, "arguments": st.one_of(st.just('{"q": "x"}'), texts)})})
o_message = st.one_of(
    st.fixed_dictionaries({"role": st.sampled_from(["system", "developer"]), "content": texts}),
    st.fixed_dictionaries({"role": st.just("user"),
                           "content": st.one_of(texts, st.lists(o_part, max_size=3))}),
    st.fixed_dictionaries({"role": st.just("assistant"), "content": st.one_of(st.none(), texts)},
                          optional={"tool_calls": st.lists(o_call, min_size=1, max_size=2)}),
    st.fixed_dictionaries({"role": st.just("tool"), "tool_call_id": ids, "content": texts}))
openai_body = st.fixed_dictionaries(
    {"messages": st.lists(o_message, min_size=1, max_size=3)},
    optional={"max_tokens": st.integers(1, 64), "temperature": st.floats(0, 2), "stream": st.booleans(),
              "stop": st.one_of(texts, st.lists(texts, max_size=2)), "user": texts,
              "tools": st.lists(st.fixed_dictionaries({"type": st.just("function"), "function":
                                st.fixed_dictionaries({"name": tool_names, "parameters": schema})}),
                                max_size=2),
              "tool_choice": st.sampled_from(["auto", "required", "none",
                                              {"type": "function", "function": {"name": "get"}}]),
              "parallel_tool_calls": st.booleans()})

# --- strategies: mutations ------------------------------------------------------------------------

SWAPS = [None, True, False, 0, -1, 1.5, 1e308, 10**30, "", "x", [], [1, "a"], {}, {"a": 1},
         [{"type": "text"}], {"type": "text", "text": 5}, [[[]]], {"type": "base64"}]
replacement = st.one_of(
    st.sampled_from(SWAPS),                                   # a value of another type
    odd_text,                                                 # surrogates, NUL, escapes
    st.sampled_from(KNOWN).map(lambda s: f"see {s} here"),  # a secret in an odd place
    st.recursive(st.one_of(st.none(), st.integers(), odd_text), lambda inner: st.one_of(
        st.lists(inner, max_size=2), st.dictionaries(st.sampled_from(["type", "text", "source"]), inner,
                                                     max_size=2)), max_leaves=4))
mutations = st.lists(st.tuples(st.integers(0, 10**6), replacement), max_size=3)
RESPELL = ("none", "none", "none", "slash", "key-escapes", "whitespace", "utf-16", "ascii")


def paths_of(value):
    """Every (container, key) place in a JSON value, the root's own fields included."""
    if isinstance(value, dict):
        for key, inner in value.items():
            yield value, key
            yield from paths_of(inner)
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            yield value, i
            yield from paths_of(inner)


def mutated(body: dict, changes: list) -> dict:
    """A copy of `body` with each change made (the drawn values stay as drawn: hypothesis shares
    them between examples)."""
    body = copy.deepcopy(body)
    for index, new in changes:
        new = copy.deepcopy(new)
        places = [p for p in paths_of(body) if p != (body, "model")] or [(body, "messages")]
        container, key = places[index % len(places)]
        container[key] = new
    return body


def encoded(body: dict, respell: str) -> bytes:
    text = json.dumps(body, ensure_ascii=respell == "ascii")
    text = escape_surrogates(text)  # raw UTF-8 otherwise; a lone surrogate can only be an escape
    if respell == "slash":
        text = text.replace("/", "\\/")  # "/" occurs inside strings only
    elif respell == "key-escapes":
        text = re.sub(r'"(role|type|content|text)":',
                      lambda m: f'"\\u{ord(m.group(1)[0]):04x}{m.group(1)[1:]}":', text)
    elif respell == "whitespace":
        text = text.replace(", ", ",\t\r\n ").replace(": ", " :\n")
    if respell == "utf-16":
        return text.encode("utf-16")  # json.loads reads UTF-16 (and -32) bytes too
    return text.encode()


ROUTES = [  # (path, model): every route kind from both client protocols
    ("/v1/messages", "claude-sonnet-4-5"),     # anthropic lane, passthrough
    ("/v1/messages", "claude-haiku-4-5"),      # zai lane, passthrough
    ("/v1/messages", "glm-4.6"),               # OpenAI provider, converted
    ("/v1/messages/count_tokens", "glm-4.6"),  # a local estimate of a converted route
    ("/v1/messages/count_tokens", "claude-sonnet-4-5"),
    ("/v1/chat/completions", "claude-sonnet-4-5"),  # converted to the anthropic lane
    ("/v1/chat/completions", "claude-haiku-4-5"),   # converted to the zai lane
    ("/v1/chat/completions", "glm-4.6"),            # OpenAI provider, passthrough
]
CREDENTIALS = [{"x-api-key": SESSION}, {"authorization": f"Bearer\t{SESSION}"},
               {"authorization": f"Bearer    {SESSION}"}, {"x-api-key": CLIENT_KEY},
               {"authorization": f"Bearer {CLIENT_KEY}"}]


@st.composite
def requests(draw):
    path, model = draw(st.sampled_from(ROUTES))
    body = draw(openai_body if path.endswith("/chat/completions") else anthropic_body)
    body = {"model": model, **body}
    body = mutated(body, draw(mutations))
    return path, draw(st.sampled_from(CREDENTIALS)), encoded(body, draw(st.sampled_from(RESPELL)))


# --- the run --------------------------------------------------------------------------------------

class Tally:
    def __init__(self, shim) -> None:
        self.shim = shim
        self.loop = asyncio.new_event_loop()
        self.client: aiohttp.ClientSession | None = None
        self.sent = 0
        self.rids: list[str] = []
        self.status = collections.Counter()
        self.problems: list[tuple] = []  # (what, path, status, body head, answer head)
        self.fivexx: list[tuple] = []  # (rid, path, status, body head, answer head)
        self.unnamed: list[tuple] = []  # conversion 400s that name no field

    async def _send(self, gate, path: str, headers: dict, body: bytes) -> None:
        async with gate:
            assert self.client is not None
            try:
                async with self.client.post(self.shim.url + path, data=body, headers={
                        **headers, "content-type": "application/json"}) as resp:
                    answer = await resp.read()
                    rid = resp.headers.get("x-ccp-request-id")
            except aiohttp.ClientError as exc:  # no answer at all: the worst outcome
                self.status[0] += 1
                self.problems.append(("no answer", path, repr(exc), body[:160], b""))
                return
        self.status[resp.status] += 1
        self.rids.append(rid or "")
        head = (path, resp.status, body[:160], answer[:300])
        if rid is None:
            self.problems.append(("no request id", *head))
        if b"Traceback" in answer:
            self.problems.append(("traceback in the answer", *head))
        if resp.status >= 500:
            self.fivexx.append((rid, *head))
        if resp.status >= 400:
            try:
                error = json.loads(answer)["error"]
                message = error["message"]
                assert isinstance(message, str) and isinstance(error["type"], str)
            except (ValueError, KeyError, TypeError, AssertionError):
                self.problems.append(("not the protocol's error shape", *head))
                return
            if path.endswith("/chat/completions"):
                shaped = "type" not in json.loads(answer) or json.loads(answer)["type"] != "error"
            else:
                shaped = json.loads(answer).get("type") == "error"
            if not shaped:
                self.problems.append(("the other protocol's error shape", *head))
            if message.startswith("cannot convert") and not re.search(
                    r"for \S+: [A-Za-z_]+(\[\d+\]|\.[A-Za-z_]+)*: ", message):
                self.unnamed.append(head)

    async def _batch(self, batch: list) -> None:
        if self.client is None:
            self.client = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
        gate = asyncio.Semaphore(CONCURRENCY)
        await asyncio.gather(*(self._send(gate, p, h, b) for p, h, b in batch))

    def send(self, batch: list) -> None:
        self.sent += len(batch)
        self.loop.run_until_complete(self._batch(batch))

    def close(self) -> None:
        if self.client is not None:
            self.loop.run_until_complete(self.client.close())
        self.loop.close()


PROVIDERS = """
providers:
  glm:
    protocol: openai
    base_url: {base}/api/paas/v4
    key_env: GLM_API_KEY
    routes:
      - name: "glm-*"
"""


def files_written(logs_dir) -> list:
    """Every file of the shim's logs folder that holds what a request carried (tee, trajectory)."""
    return [p for p in logs_dir.rglob("*.json") if p.is_file()]


def test_any_bytes_a_json_parser_accepts(make_shim, mock_anthropic, mock_zai, tmp_path):
    started = time.perf_counter()
    providers = tmp_path / "providers.yaml"
    providers.write_text(PROVIDERS.format(base=mock_zai.base_url))
    shim = make_shim({"CCP_PROVIDERS_FILE": str(providers), "GLM_API_KEY": GLM_KEY,
                      "ENABLE_BODY_TEE": "1", "CCP_ADMIN_TOKEN": ADMIN,
                      "CCP_MAX_LOG_BYTES": "1G"})  # one usage.jsonl: no line rotated away
    registered = httpx.post(f"{shim.url}/v1/sessions", trust_env=False,
                            headers={"x-ccp-admin-token": ADMIN},
                            json={"session_token": SESSION, "sandbox_id": "sbx-any",
                                  "task_name": "any_bytes"})
    assert registered.status_code in (200, 201), registered.text
    session = registered.json()["session"]
    tally = Tally(shim)

    pending: list = []

    # each example is one request; they go out BATCH at a time, concurrently (the checks are made
    # on the whole run below, so no example fails alone and nothing is shrunk)
    @settings(max_examples=CASES, deadline=None, derandomize=True, database=None,
              phases=[Phase.explicit, Phase.generate],
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                     HealthCheck.large_base_example])
    @given(request=requests())
    def property_run(request):
        pending.append(request)
        if len(pending) >= BATCH:
            tally.send(pending[:])
            pending.clear()

    try:
        property_run()
        tally.send(pending)
    finally:
        tally.close()
    shim.stop()  # every record is written once the shim has stopped: nothing to wait for

    # one record per request, each line valid JSON
    lines = shim.usage_path.read_bytes().splitlines()
    records = [json.loads(line) for line in lines]  # raises on a line that is not JSON
    by_rid = collections.Counter(r["rid"] for r in records)
    stderr = shim.stderr_path.read_text(errors="replace")
    tracebacks = stderr.count("Traceback")
    status_of = {r["rid"]: r for r in records}
    not_upstream_5xx = [f for f in tally.fivexx
                        if (status_of.get(f[0]) or {}).get("upstream_status") is None
                        or status_of[f[0]]["upstream_status"] < 500]
    elapsed = time.perf_counter() - started
    print(f"\nany-bytes: cases={tally.sent} records={len(records)} "
          f"400s={tally.status[400]} 500s={len(not_upstream_5xx)} no-answer={tally.status[0]} "
          f"tracebacks={tracebacks} "
          f"statuses={dict(sorted(tally.status.items()))} in {elapsed:.1f}s")
    assert not tally.problems, tally.problems[:5]
    assert not not_upstream_5xx, not_upstream_5xx[:5]
    assert tracebacks == 0, stderr[stderr.index("Traceback") - 300:][:3000]
    assert not tally.unnamed, tally.unnamed[:5]
    assert len(records) == tally.sent, (len(records), tally.sent)
    assert sorted(by_rid) == sorted(tally.rids) and set(by_rid.values()) == {1}
    # every request that reached an upstream was recorded with what the upstream answered
    upstream_calls = len(mock_anthropic.calls) + len(mock_zai.calls)
    assert upstream_calls == sum(r["upstream_status"] is not None for r in records) + sum(
        r["retries"] or 0 for r in records)
    # what was written about the requests: valid JSON, and never a credential
    written = files_written(shim.logs_dir)
    assert any(p.parent.name == "tee" for p in written)
    assert any(session in p.parts for p in written)
    for path in written:
        text = path.read_text()
        json.loads(text)
        assert not [s for s in SECRETS if s in text], path
    assert not [s for s in SECRETS if s in shim.usage_path.read_text() + stderr]
