"""What the bench measures: the scenario matrix, the request bodies, and the targets ccp must meet.

Scenarios are data (`Scenario`); `scenarios(quick)` is the list a run goes through. `request_body()`
builds a Claude-Code-sized Messages request (a long system prompt and a conversation, ~64 KB by
default), the same bytes for every target. `checks(combined)` turns the combined numbers into
verdicts, each a ratio or difference inside this one run.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from harness.bench.loadgen import LoadSpec
from harness.bench.stats import ratio, verdict

if TYPE_CHECKING:
    from harness.bench.targets import Target

HOLD_STREAMS = 1000


@dataclass(frozen=True)
class Scenario:
    name: str
    concurrency: int
    stream: bool = False
    convert: bool = False
    deltas: int = 8  # text deltas per streamed answer
    delay_ms: int = 0  # mock's wait before each delta
    duration: float | None = None  # seconds of load (or `total` requests)
    total: int | None = None
    cap: float = 60.0  # hard cap, seconds


def scenarios(quick: bool = False) -> list[Scenario]:
    d = 0.8 if quick else 4.0
    drip = (5, 100) if quick else (10, 100)  # deltas × ms: each held stream lasts ~0.5 s / ~1 s
    return [
        Scenario("nonstream_c1", 1, duration=d, cap=d + 20),
        Scenario("nonstream_c32", 32, duration=d, cap=d + 20),
        Scenario("stream50_c32", 32, stream=True, deltas=50, duration=d, cap=d + 20),
        Scenario(f"hold_{HOLD_STREAMS}", HOLD_STREAMS, stream=True, deltas=drip[0],
                 delay_ms=drip[1], total=HOLD_STREAMS, cap=30.0),
        Scenario("convert_c32", 32, convert=True, duration=d, cap=d + 20),
    ]


def request_body(model: str, stream: bool, size_kb: int = 64) -> bytes:
    """A Messages request of about `size_kb` KB with the shape of the claude CLI's (our own words):
    system blocks, a dozen tools with JSON-schema inputs (about half the bytes of a fresh session's
    request), then a conversation of text, `tool_use` and `tool_result` blocks carrying source code;
    some non-ASCII, as the CLI's JSON keeps it. The conversation grows to reach `size_kb`."""
    note = ("Use this tool when the task needs it: read the input schema first; paths are absolute, "
            "and a failed call says why (blind retries waste the user's time). ")
    tools = []
    for i in range(12):
        props = {f"arg_{j}": {"type": ("string", "integer", "boolean")[j % 3],
                              "description": f"Argument {j} of tool {i}: " + note[: 60 + 7 * j]}
                 for j in range(8)}
        props["options"] = {"type": "object", "properties": {
            "mode": {"type": "string", "enum": ["fast", "careful", "dry-run"]},
            "limits": {"type": "array", "items": {"type": "integer", "minimum": 0}}},
            "additionalProperties": False}
        tools.append({"name": f"Tool{i}", "description": note * 6,
                      "input_schema": {"type": "object", "properties": props,
                                       "required": ["arg_0", "arg_1"], "additionalProperties": False,
                                       "$schema": "http://json-schema.org/draft-07/schema#"}})
    system = [{"type": "text", "text": "You are a coding agent working in the user's repository — "
                                       "answer in the user's language (français, 日本語, …)."},
              {"type": "text", "text": note * 20, "cache_control": {"type": "ephemeral"}}]
    code = ('def route(model: str) -> str:\n    """Pick the lane for a model."""\n'
            '    return "zai" if "haiku" in model else "anthropic"\n\n')
    payload = {"model": model, "max_tokens": 32000, "stream": stream, "system": system,
               "tools": tools, "metadata": {"user_id": "bench-user"},
               "messages": [{"role": "user", "content": [{"type": "text", "text": "Fix the router."}]}]}
    n = 0
    while len(json.dumps(payload, ensure_ascii=False).encode()) < size_kb * 1024 - 1500:
        n += 1
        payload["messages"] += [
            {"role": "assistant", "content": [
                {"type": "text", "text": f"Reading part {n} of the router."},
                {"type": "tool_use", "id": f"toolu_{n:04d}", "name": "Tool4",
                 "input": {"arg_0": f"/repo/proxy/routing_{n}.py", "arg_1": n, "options": {
                     "mode": "careful", "limits": [n, 2 * n]}}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": f"toolu_{n:04d}",
                 "content": [{"type": "text", "text": code * 14 + "# lane — «zai»\n"}]}]}]
    payload["messages"].append({"role": "user", "content": "Reply with exactly: ok and nothing else."})
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def _get(combined: dict, target: str, scenario: str, key: str):
    return (combined.get(target) or {}).get(scenario, {}).get(key)


def checks(combined: dict) -> list[dict]:
    """ccp's targets from the issue, as verdicts over `combined[target][scenario]`."""
    g = lambda t, s, k: _get(combined, t, s, k)  # noqa: E731
    hold = f"hold_{HOLD_STREAMS}"
    out = [
        verdict("CPU/request ÷ floor's (non-stream, 32 clients)",
                ratio(g("ccp", "nonstream_c32", "cpu_ms_per_req"),
                      g("floor", "nonstream_c32", "cpu_ms_per_req")), 1.5, unit="×"),
        verdict("CPU/request ÷ floor's (stream 50 deltas, 32 clients)",
                ratio(g("ccp", "stream50_c32", "cpu_ms_per_req"),
                      g("floor", "stream50_c32", "cpu_ms_per_req")), 1.5, unit="×"),
        verdict("added p50 at 1 client", g("ccp", "nonstream_c1", "added_p50_ms"), 0.6, unit=" ms"),
        verdict("req/s at 32 clients ÷ CCR's",
                ratio(g("ccp", "nonstream_c32", "rps"), g("ccr", "nonstream_c32", "rps")), 3.0,
                at_most=False, unit="×"),
        verdict("req/s at 32 clients ÷ LiteLLM's",
                ratio(g("ccp", "nonstream_c32", "rps"), g("litellm", "nonstream_c32", "rps")), 30.0,
                at_most=False, unit="×"),
        verdict(f"errors holding {HOLD_STREAMS} streams", g("ccp", hold, "errors"), 0),
        verdict(f"added TTFB holding {HOLD_STREAMS} streams ÷ floor's",
                ratio(g("ccp", hold, "added_ttfb_ms"), g("floor", hold, "added_ttfb_ms")), 1.5,
                unit="×"),
        verdict(f"peak RSS after holding {HOLD_STREAMS} streams", g("ccp", hold, "peak_rss_mb"),
                150.0, unit=" MB"),
        verdict("conversion CPU/request ÷ passthrough's (32 clients)",
                ratio(g("ccp", "convert_c32", "cpu_ms_per_req"),
                      g("ccp", "nonstream_c32", "cpu_ms_per_req")), 2.0, unit="×"),
    ]
    return out


ABLATION_SCENARIOS = ("nonstream_c32", "stream50_c32")


def ablation(combined: dict) -> list[dict]:
    """For each ccp row (the full shim first, then those with features switched off) in the two
    CPU scenarios: CPU per request, ÷ the floor's, and what switching off saved against the full
    shim, in µs and in floors."""
    rows = []
    variants = ["ccp"] + sorted(t for t in combined if t.startswith("ccp-without-") or t == "ccp-bare")
    for scenario in ABLATION_SCENARIOS:
        floor = _get(combined, "floor", scenario, "cpu_ms_per_req")
        full = _get(combined, "ccp", scenario, "cpu_ms_per_req")
        for target in variants:
            cpu = _get(combined, target, scenario, "cpu_ms_per_req")
            if cpu is None:
                continue
            saved = None if full is None or target == "ccp" else full - cpu
            rows.append({"scenario": scenario, "target": target, "cpu_ms_per_req": cpu,
                         "floor_ratio": ratio(cpu, floor),
                         "saved_us": None if saved is None else saved * 1000.0,
                         "saved_floors": ratio(saved, floor)})
    return rows if len(variants) > 1 else []


HEADERS = {"content-type": "application/json", "x-api-key": "bench-client-key",
           "anthropic-version": "2023-06-01"}


def spec_for(target: Target, sc: Scenario, body_kb: int) -> LoadSpec:
    """The load one scenario puts on one target."""
    body = request_body(target.model(sc.convert), sc.stream, body_kb)
    return LoadSpec(url=target.url + "/v1/messages", body=body, headers=HEADERS,
                    concurrency=sc.concurrency, stream=sc.stream, total=sc.total,
                    duration=sc.duration, cap=sc.cap)
