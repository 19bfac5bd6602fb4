"""OpenAI → Anthropic stream conversion on generated streams (issue 17, point 7).

The fixture cases pin shapes someone has met; this file looks for the ones nobody has yet. Hypothesis
builds one provider answer at a time — optional reasoning, text before, between and after 0-4 tool
calls whose arguments are JSON objects with nested values and awkward strings (quotes, backslashes,
control and non-BMP characters, literal `\\u`) — and writes it as a `chat.completion.chunk` SSE
stream under randomly drawn provider conventions: ids on the first fragment / every fragment / never;
`index` per call / always 0 / missing (a reused or missing index only with a new id per call, or under
the name rule); arguments cut anywhere, inside strings and `\\uXXXX` escapes; whole calls in one
delta; parallel calls interleaved (distinct indexes only); usage first / middle / last with
`choices: []` / running / absent, with or without cached tokens; finish_reason tool_calls / stop /
tool_use after tool calls, stop / length otherwise; optional `[DONE]`; `\\n` or `\\r\\n`, `data:`
with or without a space, keep-alives, and the bytes cut anywhere, also inside UTF-8 characters. The
same answer is also written as a non-stream `chat.completion` body.

For every example: (a) the Anthropic event grammar; (b) each tool_use block's joined
`input_json_delta`s parse to the arguments meant, names and order right, ids valid, unique and as the
id contract says; (c) the official SDK's final message equals the one converted from the non-stream
body (and what was meant), message ids fresh; (d) the converter's `.message` equals the SDK's;
(e) usage: input = prompt − cached. Derandomized: CI runs the same examples every time, and a failure
prints the exact chunk list.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import anthropic
import httpx2
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from proxy.core.convert import OpenAIToAnthropicStream, openai_to_anthropic_response

pytestmark = pytest.mark.quick

MODEL = "claude-sonnet-4-5"
VALID_ID = re.compile(r"^[A-Za-z0-9_-]+$")
FRESH_TOOL_ID = re.compile(r"^toolu_01[A-Za-z0-9]{22}$")
WRAPPED_TOOL_ID = re.compile(r"^toolu_ccp_[A-Za-z0-9]{8}[A-Za-z0-9_-]+$")
USAGE_KEYS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
DELTA_TYPES = {"text": {"text_delta"}, "thinking": {"thinking_delta", "signature_delta"},
               "tool_use": {"input_json_delta"}}


def _settings(examples: int):
    return settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                    print_blob=False,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.large_base_example])


# --- what the provider meant --------------------------------------------------------------------

# st.text draws a whole string at once (lists of characters cost a draw each): a string is a run of
# any characters, a run of awkward ones (joined, they also make literal `\u00e9`, `\"`, flags …),
# and another run of any characters.
_AWKWARD = '"\\u00e9n\n\r\t\x00\x1f\x7f/ éß€中\u2028\ufeff😀𝄞🇫🇷{}[],:'
_any = st.text(st.characters(codec="utf-8"), max_size=6)
_awkward = st.text(_AWKWARD, max_size=6)
_strings = st.tuples(_any, _awkward, _any).map("".join)
_prose = st.tuples(st.text("ab c\n.", max_size=8), _awkward, _any, st.text("ab c\n.", max_size=8)).map("".join)
_scalars = (st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1)
            | st.floats(allow_nan=False, allow_infinity=False) | _strings)


def _objects(values):
    return st.lists(st.tuples(_strings, values), max_size=3).map(dict)


_nested = _scalars | st.lists(_scalars, max_size=3) | _objects(_scalars)  # two levels deep, then three
_json_values = _scalars | _nested | st.lists(_nested, max_size=2) | _objects(_nested)
_arguments = st.lists(st.tuples(_strings, _json_values), max_size=4).map(dict)
_ID_CHARS = "abcXYZ0189_-"
_names = st.one_of(st.sampled_from(["Bash", "Read", "Write", "get_weather", "mcp__files__read-file"]),
                   st.builds("{}{}".format, st.sampled_from("tT"), st.text(_ID_CHARS, max_size=12)))


@dataclass
class Call:
    name: str
    args: dict


@dataclass
class Answer:
    reasoning: str
    reasoning_key: str
    texts: list[str]  # len(calls) + 1 segments: before call 0, …, after the last call
    calls: list[Call]
    finish: str
    usage: dict | None

    @property
    def text(self) -> str:
        return "".join(self.texts)


@st.composite
def answers(draw) -> Answer:
    calls = [Call(draw(_names), draw(_arguments)) for _ in range(draw(st.integers(0, 4)))]
    texts = [draw(st.one_of(st.just(""), _prose)) for _ in range(len(calls) + 1)]
    # A whitespace-only segment after the last real text opens no block in a stream (the contract's
    # whitespace rule), while the non-stream body keeps it inside its one text: not generated.
    real = [i for i, t in enumerate(texts) if t.strip()]
    if real:
        texts = [t if i <= real[-1] else "" for i, t in enumerate(texts)]
    reasoning = draw(st.one_of(st.just(""), _prose))
    finish = draw(st.sampled_from(["tool_calls", "stop", "tool_use"] if calls else ["stop", "length"]))
    usage = None
    if draw(st.booleans()) or draw(st.booleans()):
        prompt = draw(st.integers(0, 200_000))
        completion = draw(st.integers(0, 50_000))
        usage = {"prompt_tokens": prompt, "completion_tokens": completion,
                 "total_tokens": prompt + completion}
        details = draw(st.sampled_from(["cached", "none", "no-cached-key"]))
        if details == "cached":
            usage["prompt_tokens_details"] = {"cached_tokens": draw(st.integers(0, prompt))}
        elif details == "no-cached-key":
            usage["prompt_tokens_details"] = {"audio_tokens": 0}
    return Answer(reasoning, draw(st.sampled_from(["reasoning_content", "reasoning"])), texts, calls,
                  finish, usage)


# --- how the provider wrote it ------------------------------------------------------------------

@dataclass
class Case:
    answer: Answer
    conventions: dict
    pids: list[str | None]
    items: list = field(default_factory=list)  # the chunk objects in order, and "[DONE]"
    pieces: list[bytes] = field(default_factory=list)  # the stream's bytes as they arrive
    body: dict = field(default_factory=dict)  # the non-stream form of the same answer

    @property
    def raw(self) -> bytes:
        return b"".join(self.pieces)

    def __repr__(self) -> str:  # what a failure report shows: the conventions and the exact chunks
        chunks = json.dumps(self.items, ensure_ascii=False)
        return (f"Case({self.conventions}, pids={self.pids},\n  chunks={chunks},"
                f"\n  byte pieces={[len(p) for p in self.pieces]})")

    def _repr_pretty_(self, printer, cycle) -> None:  # hypothesis's report uses this, not __repr__
        printer.text(repr(self))


def _cuts(draw, length: int, extra: list[int] = (), most: int = 6) -> list[int]:
    """Sorted cut offsets strictly inside (0, length)."""
    if length < 2:
        return []
    cuts = set(draw(st.lists(st.integers(1, length - 1), max_size=most)))
    cuts.update(c for c in extra if 0 < c < length)
    return sorted(cuts)


def _split(draw, text: str, extra: list[int] = (), most: int = 6) -> list[str]:
    """`text` as non-empty pieces cut at random places (one piece when nothing is cut)."""
    if not text:
        return []
    bounds = [0, *_cuts(draw, len(text), extra, most), len(text)]
    return [text[a:b] for a, b in zip(bounds, bounds[1:])]


def _provider_ids(draw, n: int, may_repeat: bool) -> list[str]:
    valid = st.builds("call_{}".format, st.text(_ID_CHARS, min_size=1, max_size=24))
    invalid = st.one_of(st.builds("functions.{}:{}".format, _names, st.integers(0, 9)),
                        st.sampled_from(["call 1", "tool/2", "id=3", "调用-4", "call.5"]))
    ids: list[str] = []
    for _ in range(n):
        if may_repeat and ids and draw(st.integers(0, 4)) == 0:
            ids.append(draw(st.sampled_from(ids)))
            continue
        while True:
            candidate = draw(st.one_of(valid, invalid))
            if candidate not in ids:
                break
        ids.append(candidate)
    return ids


def _fragments(draw, call: Call, pid: str | None, index: int | None, id_mode: str) -> list[dict]:
    """One call's tool-call fragments: the name first, then the arguments in random pieces."""
    ensure_ascii = draw(st.booleans())
    separators = draw(st.sampled_from([(",", ":"), (", ", ": ")]))
    text = json.dumps(call.args, ensure_ascii=ensure_ascii, separators=separators)
    escapes = [m.start() for m in re.finditer(r"\\u[0-9a-fA-F]{4}", text)]
    extra = [draw(st.sampled_from(escapes)) + draw(st.integers(1, 5))] if escapes and draw(st.booleans()) else []
    pieces = _split(draw, text, extra)
    name_alone = draw(st.booleans())  # a first fragment carrying the name and arguments ""
    head: dict = {"function": {"name": call.name, "arguments": "" if name_alone else pieces[0]}}
    if draw(st.booleans()):
        head["type"] = "function"
    frags = [head] + [{"function": {"arguments": p}} for p in (pieces if name_alone else pieces[1:])]
    for n, frag in enumerate(frags):
        if index is not None:
            frag["index"] = index
        if pid is not None and (id_mode == "every" or (id_mode == "first" and n == 0)):
            frag["id"] = pid
    return frags


_RANK = {"role": 0, "reasoning_content": 1, "reasoning": 1, "content": 2, "tool_calls": 3}


def _merge_neighbours(draw, deltas: list[dict], lists_mergeable: bool) -> list[dict]:
    """Some neighbouring deltas sent as one, where the converter's reading order (reasoning, content,
    tool_calls) keeps the provider's order; tool-call lists only where keys are indexes."""
    out = [deltas[0]] if deltas else []
    for delta in deltas[1:]:
        last = out[-1]
        ranks_a = [_RANK[k] for k in last if last[k] is not None]
        ranks_b = [_RANK[k] for k in delta if delta[k] is not None]
        if "tool_calls" in last and "tool_calls" in delta:
            can = lists_mergeable and ranks_a == ranks_b == [_RANK["tool_calls"]]
        else:
            can = bool(ranks_a and ranks_b) and max(ranks_a) < min(ranks_b)
        if not can or draw(st.integers(0, 3)):
            out.append(delta)
        elif "tool_calls" in last and "tool_calls" in delta:
            out[-1] = {**last, "tool_calls": last["tool_calls"] + delta["tool_calls"]}
        else:
            out[-1] = {**last, **{k: v for k, v in delta.items() if v is not None or k not in last}}
    return out


def _sse_bytes(draw, items: list) -> bytes:
    eol = draw(st.sampled_from(["\n", "\r\n"]))
    space = draw(st.sampled_from([" ", ""]))
    ensure_ascii = draw(st.booleans())
    compact = draw(st.booleans())
    frames = []
    for item in items:
        if draw(st.integers(0, 9)) == 0:
            frames.append(": keep-alive" + eol + eol)
        data = item if item == "[DONE]" else json.dumps(
            item, ensure_ascii=ensure_ascii, separators=(",", ":") if compact else None)
        frames.append("data:" + space + data + eol + eol)
    return "".join(frames).encode("utf-8")


@st.composite
def cases(draw) -> Case:
    answer = draw(answers())
    calls, n = answer.calls, len(answer.calls)
    id_mode = draw(st.sampled_from(["first", "every", "never"]))
    index_mode = draw(st.sampled_from(["per_call", "zero", "missing"]))
    layouts = ["sequential"] + (["batch"] if n else [])
    if n > 1 and index_mode == "per_call":
        layouts.insert(0, "interleaved")
    layout = draw(st.sampled_from(layouts))
    # the same provider id twice in one answer only where indexes tell the calls apart
    pids = _provider_ids(draw, n, may_repeat=index_mode == "per_call") if id_mode != "never" else [None] * n
    base, stride = draw(st.sampled_from([0, 1])), draw(st.sampled_from([1, 1, 2]))
    indexes = [{"per_call": base + stride * i, "zero": 0, "missing": None}[index_mode] for i in range(n)]
    frags = [_fragments(draw, call, pid, index, id_mode) for call, pid, index in zip(calls, pids, indexes)]

    deltas: list[dict] = []
    if draw(st.booleans()):
        deltas.append({"role": "assistant", "content": draw(st.sampled_from(["", None]))})
    deltas += [{answer.reasoning_key: p} for p in _split(draw, answer.reasoning)]
    texts = answer.texts if layout == "sequential" else ["".join(answer.texts[:-1]), answer.texts[-1]]
    null_content = draw(st.booleans())  # some providers send "content": null beside tool calls

    def tool_delta(fragments: list[dict]) -> dict:
        return {"content": None, "tool_calls": fragments} if null_content else {"tool_calls": fragments}

    if layout == "sequential":
        for i in range(n):
            deltas += [{"content": p} for p in _split(draw, texts[i])]
            deltas += [tool_delta([f]) for f in frags[i]]
    else:
        deltas += [{"content": p} for p in _split(draw, texts[0])]
        if layout == "batch":  # each call whole, all in one delta
            deltas.append(tool_delta([{**f[0], "function": {
                "name": f[0]["function"]["name"],
                "arguments": "".join(x["function"]["arguments"] for x in f)}} for f in frags]))
        else:  # round robin, a fragment per chunk or a round per chunk
            per_round = draw(st.booleans())
            for r in range(max(len(f) for f in frags)):
                row = [f[r] for f in frags if r < len(f)]
                deltas += [tool_delta(row)] if per_round else [tool_delta([x]) for x in row]
    deltas += [{"content": p} for p in _split(draw, texts[-1])]
    deltas = _merge_neighbours(draw, deltas, lists_mergeable=index_mode in ("per_call", "zero"))

    completion_id = draw(st.sampled_from(["chatcmpl-abc123", "", None]))
    with_finish_key = draw(st.booleans())

    def chunk(delta: dict | None, finish: str | None = None) -> dict:
        obj: dict = {"object": "chat.completion.chunk", "created": 1700000000, "model": "provider-model"}
        if completion_id is not None:
            obj["id"] = completion_id
        if delta is None:
            obj["choices"] = []
        else:
            choice: dict = {"index": 0, "delta": delta}
            if finish is not None or with_finish_key:
                choice["finish_reason"] = finish
            obj["choices"] = [choice]
        return obj

    chunks = [chunk(d) for d in deltas]
    if chunks and draw(st.booleans()):
        chunks[-1]["choices"][0]["finish_reason"] = answer.finish
    else:
        chunks.append(chunk({}, answer.finish))
    usage_at = "absent" if answer.usage is None else draw(st.sampled_from(["first", "middle", "last", "running"]))
    if usage_at == "first":
        chunks[0]["usage"] = answer.usage
    elif usage_at == "middle":
        chunks[draw(st.integers(0, len(chunks) - 1))]["usage"] = answer.usage
    elif usage_at == "running":  # counts so far on every chunk, the totals on a last one
        for k, obj in enumerate(chunks):
            obj["usage"] = {"prompt_tokens": answer.usage["prompt_tokens"],
                            "completion_tokens": answer.usage["completion_tokens"] * k // len(chunks)}
    if usage_at in ("last", "running"):
        chunks.append({**chunk(None), "usage": answer.usage})
    elif usage_at == "absent" and draw(st.booleans()):
        for obj in chunks:
            obj["usage"] = None
    items = chunks + (["[DONE]"] if draw(st.booleans()) else [])

    raw = _sse_bytes(draw, items)
    continuation = [i for i, b in enumerate(raw) if 0x80 <= b < 0xC0]
    inside_utf8 = [draw(st.sampled_from(continuation))] if continuation and draw(st.booleans()) else []
    bounds = [0, *_cuts(draw, len(raw), inside_utf8, most=24), len(raw)]
    pieces = [raw[a:b] for a, b in zip(bounds, bounds[1:])]

    message: dict = {"role": "assistant", "content": answer.text or (None if calls else "")}
    if answer.reasoning:
        message[answer.reasoning_key] = answer.reasoning
    if calls:
        message["tool_calls"] = [
            {**({"id": pid} if pid is not None else {}), "type": "function",
             "function": {"name": call.name, "arguments": json.dumps(call.args, ensure_ascii=draw(st.booleans()))}}
            for call, pid in zip(calls, pids)]
    body = {"object": "chat.completion", "created": 1700000000, "model": "provider-model",
            "choices": [{"index": 0, "message": message, "finish_reason": answer.finish}]}
    if completion_id is not None:
        body["id"] = completion_id
    if answer.usage is not None:
        body["usage"] = answer.usage
    conventions = {"ids": id_mode, "index": index_mode, "layout": layout, "usage": usage_at}
    return Case(answer, conventions, pids, items, pieces, body)


# --- running the converter and the SDK ----------------------------------------------------------

@dataclass
class Run:
    converter: OpenAIToAnthropicStream
    out: bytes
    events: list[dict]


def _convert(case: Case) -> Run:
    converter = OpenAIToAnthropicStream(MODEL)
    out = b"".join(converter.feed(piece) for piece in case.pieces) + converter.finish()
    events = []
    for frame in out.decode("utf-8").split("\n\n")[:-1]:
        lines = frame.split("\n")
        assert len(lines) == 2 and lines[0].startswith("event: ") and lines[1].startswith("data: "), frame
        event = json.loads(lines[1][len("data: "):])
        assert event["type"] == lines[0][len("event: "):], frame
        events.append(event)
    assert out.endswith(b"\n\n")
    note(f"events: {[_describe(e) for e in events]}")
    return Run(converter, out, events)


def _describe(event: dict) -> str:
    if event["type"] == "content_block_start":
        return f"start:{event['content_block']['type']}"
    if event["type"] == "content_block_delta":
        return f"delta:{event['delta']['type']}"
    return event["type"]


@pytest.fixture(scope="module")
def sdk_final():
    """The official SDK's `get_final_message()` over converted bytes (served by a mock transport)."""
    served: list[bytes] = []

    def handler(request):
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=served.pop())

    http = httpx2.Client(transport=httpx2.MockTransport(handler))
    client = anthropic.Anthropic(base_url="http://shim", api_key="x", http_client=http, max_retries=0)

    def final(out: bytes):
        served.append(out)
        with client.messages.stream(model=MODEL, max_tokens=1,
                                    messages=[{"role": "user", "content": "x"}]) as stream:
            return stream.get_final_message()

    yield final
    client.close()


def _blocks(message) -> list[dict]:
    """Content blocks as plain dicts (from the SDK's models or the converter's dicts)."""
    out = []
    for block in message["content"] if isinstance(message, dict) else message.content:
        block = block if isinstance(block, dict) else block.model_dump()
        keep = {"text": ("type", "text"), "thinking": ("type", "thinking", "signature"),
                "tool_use": ("type", "id", "name", "input")}[block["type"]]
        out.append({k: block[k] for k in keep})
    return out


def _summary(message) -> dict:
    """What a stream and the non-stream form of one answer must agree on (not the fresh ids)."""
    blocks = _blocks(message)
    usage = message["usage"] if isinstance(message, dict) else message.usage.model_dump()
    stop = (message["stop_reason"], message["stop_sequence"]) if isinstance(message, dict) \
        else (message.stop_reason, message.stop_sequence)
    return {"text": "".join(b["text"] for b in blocks if b["type"] == "text"),
            "thinking": "".join(b["thinking"] for b in blocks if b["type"] == "thinking"),
            "tools": [(b["name"], b["input"]) for b in blocks if b["type"] == "tool_use"],
            "stop_reason": stop[0], "stop_sequence": stop[1],
            "usage": {k: usage.get(k) for k in ("input_tokens", "output_tokens", "cache_read_input_tokens")}}


def _expected_usage(answer: Answer) -> dict:
    usage = answer.usage or {}
    prompt, completion = usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0)
    return {"input_tokens": prompt - cached, "output_tokens": completion,
            "cache_creation_input_tokens": 0, "cache_read_input_tokens": cached}


def _meant(answer: Answer) -> dict:
    usage = _expected_usage(answer)
    if answer.calls:
        stop = "tool_use"
    else:
        stop = {"stop": "end_turn", "length": "max_tokens"}[answer.finish]
    return {"text": answer.text if answer.text.strip() else "",
            "thinking": answer.reasoning if answer.reasoning.strip() else "",
            "tools": [(c.name, c.args) for c in answer.calls],
            "stop_reason": stop, "stop_sequence": None,
            "usage": {k: usage[k] for k in ("input_tokens", "output_tokens", "cache_read_input_tokens")}}


def _assert_tool_ids(ids: list[str], pids: list[str | None]) -> None:
    """Valid and unique; the provider's own id when valid and new in the answer, a reversible
    `toolu_ccp_…` wrap when not valid or repeated, a fresh `toolu_01…` id when there is none."""
    assert all(VALID_ID.match(i) for i in ids), ids
    assert len(set(ids)) == len(ids), ids
    from proxy.core.convert.ids import (
        provider_tool_id,  # the contract's way back to the provider's id
    )
    seen: set[str] = set()
    for tool_id, pid in zip(ids, pids):
        if pid is None:
            assert FRESH_TOOL_ID.match(tool_id), tool_id
        elif VALID_ID.match(pid) and pid not in seen:
            assert tool_id == pid
        else:
            assert WRAPPED_TOOL_ID.match(tool_id) and provider_tool_id(tool_id) == pid, (tool_id, pid)
        if pid is not None:
            seen.add(pid)


# --- the properties -----------------------------------------------------------------------------

@_settings(600)
@given(case=cases())
def test_converted_stream_obeys_the_anthropic_event_grammar(case):
    """(a) message_start first and once; blocks 0..n, each started (empty), fed only deltas of its
    own type while it is the open one, stopped before the next; message_delta, message_stop last."""
    run = _convert(case)
    events, names = run.events, [e["type"] for e in run.events]
    assert run.converter.complete and run.converter.error is None
    assert run.converter.events == len(events)
    assert names[0] == "message_start" and names.count("message_start") == 1
    assert names[-2:] == ["message_delta", "message_stop"]
    assert names.count("message_delta") == 1 and names.count("message_stop") == 1
    assert "error" not in names
    start = events[0]["message"]
    assert VALID_ID.match(start["id"]) and start["content"] == [] and start["stop_reason"] is None
    assert start["role"] == "assistant" and start["model"] == MODEL
    open_block, kinds, content = None, [], []
    for event in events[1:-2]:
        kind = event["type"]
        if kind == "ping":
            continue
        if kind == "content_block_start":
            assert open_block is None, "a block started while another is open"
            assert event["index"] == len(kinds), "blocks must be numbered 0..n in order"
            block = event["content_block"]
            assert block["type"] in DELTA_TYPES
            assert block.get({"text": "text", "thinking": "thinking", "tool_use": "input"}[block["type"]]) \
                in ("", {}), f"a block starts empty: {block}"
            open_block = event["index"]
            kinds.append(block["type"])
            content.append("")
        elif kind == "content_block_delta":
            assert open_block is not None and event["index"] == open_block, "delta for a block that is not open"
            delta = event["delta"]
            kind_open = kinds[open_block]
            assert delta["type"] in DELTA_TYPES[kind_open], f"{delta['type']} in a {kind_open} block"
            content[open_block] += delta.get("text", delta.get("thinking", delta.get("partial_json", "")))
        elif kind == "content_block_stop":
            assert open_block is not None and event["index"] == open_block
            open_block = None
        else:
            raise AssertionError(f"{kind} inside the message's blocks")
    assert open_block is None
    for kind, text in zip(kinds, content):  # the contract's whitespace rule: no empty text/thinking block
        assert kind == "tool_use" or text.strip(), f"a {kind} block with only {text!r}"
    assert events[-2]["delta"]["stop_reason"] in ("end_turn", "max_tokens", "tool_use")


@_settings(600)
@given(case=cases())
def test_tool_blocks_carry_the_arguments_meant_under_valid_unique_ids(case):
    """(b) per tool_use block: the joined partial_json parses to the arguments meant, names right,
    in order; ids valid and unique; kept, wrapped (reversibly) or fresh as the id contract says."""
    run = _convert(case)
    tools, open_tool = [], None
    for event in run.events:
        if event["type"] == "content_block_start":
            open_tool = None
            if event["content_block"]["type"] == "tool_use":
                open_tool = {"id": event["content_block"]["id"], "name": event["content_block"]["name"],
                             "json": ""}
                tools.append(open_tool)
        elif event["type"] == "content_block_delta" and open_tool is not None:
            open_tool["json"] += event["delta"].get("partial_json", "")
    assert [t["name"] for t in tools] == [c.name for c in case.answer.calls]
    for tool, call in zip(tools, case.answer.calls):
        assert json.loads(tool["json"]) == call.args, tool["json"]
    ids = [t["id"] for t in tools]
    _assert_tool_ids(ids, case.pids)
    if case.conventions["ids"] == "never" and ids:  # fresh ids: another conversion shares none
        again = _blocks(_convert(case).converter.message)
        assert not set(ids) & {b["id"] for b in again if b["type"] == "tool_use"}


@_settings(450)
@given(case=cases())
def test_sdk_final_message_equals_the_non_stream_answer(case, sdk_final):
    """(c) the SDK's final message over the converted stream equals the message converted from the
    non-stream body, and both are what the provider meant; message ids are fresh every time."""
    run = _convert(case)
    final = sdk_final(run.out)
    whole = openai_to_anthropic_response(json.loads(json.dumps(case.body)), MODEL)
    assert _summary(final) == _summary(whole)
    assert _summary(whole) == _meant(case.answer)
    assert final.model == MODEL and whole["model"] == MODEL
    _assert_tool_ids([b["id"] for b in _blocks(whole) if b["type"] == "tool_use"], case.pids)
    again = _convert(case).converter.message["id"]
    ids = {final.id, again, whole["id"], openai_to_anthropic_response(case.body, MODEL)["id"]}
    assert len(ids) == 4, f"message ids repeat: {ids}"
    assert all(VALID_ID.match(i) for i in ids), ids


@_settings(450)
@given(case=cases())
def test_converter_message_and_usage_agree_with_the_sdk(case, sdk_final):
    """(d) the converter's `.message` is the SDK's final message; (e) usage: input = prompt − cached,
    cache_read = cached, output = completion, in message_delta, the SDK's message and the
    non-stream answer; message_start carries all four counters."""
    run = _convert(case)
    final = sdk_final(run.out)
    mine = run.converter.message
    assert mine["id"] == final.id and mine["model"] == final.model == MODEL
    assert _blocks(mine) == _blocks(final)
    assert (mine["stop_reason"], mine["stop_sequence"]) == (final.stop_reason, final.stop_sequence)
    assert run.converter.stop_reason == final.stop_reason
    expected = _expected_usage(case.answer)
    assert {k: mine["usage"].get(k) for k in USAGE_KEYS} == expected
    assert {k: getattr(final.usage, k) for k in USAGE_KEYS} == expected
    whole = openai_to_anthropic_response(case.body, MODEL)
    assert {k: whole["usage"].get(k) for k in USAGE_KEYS} == expected
    start_usage = run.events[0]["message"]["usage"]
    assert set(USAGE_KEYS) <= set(start_usage), start_usage
    assert all(isinstance(start_usage[k], int) and start_usage[k] >= 0 for k in USAGE_KEYS), start_usage
    end_usage = run.events[-2]["usage"]
    assert {k: end_usage.get(k) for k in USAGE_KEYS} == expected, end_usage
