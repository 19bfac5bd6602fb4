"""What the bench measures: the scenario matrix, the request bodies, and the targets ccp must meet.

Scenarios are data (`Scenario`); `scenarios(quick)` is the list a run goes through. `request_body()`
builds a Claude-Code-sized Messages request (a long system prompt and a conversation, ~64 KB by
default), the same bytes for every target. `checks(combined)` turns the combined numbers into
verdicts, each a ratio or difference inside this one run.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from harness.bench.stats import ratio, verdict

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
    """A Messages request of about `size_kb` KB, shaped like Claude Code's."""
    para = ("You are an interactive CLI tool that helps users with software engineering tasks. "
            "Use the instructions below and the tools available to you to assist the user. ")
    system = (para * (size_kb * 1024 // 2 // len(para) + 1))[: size_kb * 1024 // 2]
    turn = "def f(x):\n    return x * 2  # a line of code the user pasted\n"
    messages = []
    per_turn = max(1, size_kb * 1024 // 2 // 8)
    for i in range(8):
        role = "user" if i % 2 == 0 else "assistant"
        messages.append({"role": role, "content": [{"type": "text",
                                                   "text": (turn * (per_turn // len(turn) + 1))[:per_turn]}]})
    messages.append({"role": "user", "content": "Reply with exactly: ok and nothing else."})
    return json.dumps({"model": model, "max_tokens": 1024, "stream": stream,
                       "system": [{"type": "text", "text": system}], "messages": messages},
                      separators=(",", ":")).encode()


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
