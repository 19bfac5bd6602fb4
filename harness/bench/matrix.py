"""What the bench measures: the scenario matrix, the request bodies, and the targets ccp must meet.

Scenarios are data (`Scenario`); `scenarios(quick)` is the list a run goes through. `request_body()`
builds a Claude-Code-sized Messages request (a long system prompt and a conversation, ~64 KB by
default), the same bytes for every target. `checks(combined)` turns the combined numbers into
verdicts, each a ratio or difference inside this one run. The https path (`tls_*` scenarios, on the
mock's TLS port) is judged against its own floor, the bare TLS relay `floor-tls` (`tls_checks`), and
`tls_ratios` gives every upstream client ccp offers on it as ratios to that floor. `store_ratios`
puts `ccp-pg` (the store on PostgreSQL) against `ccp` (the SQLite default) of the same rounds, and
`store_checks` judges it: the store's writer is off the request path, so the CPU per request should
barely move.
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
    tls: bool = False  # the https path: run by the `tls` targets (the mock's TLS port) only
    body_kb: int | None = None  # this scenario's request body (None: the run's --body-kb)
    # (target, scenario) whose rounds pair with this one's for added latency; None: `direct` (or
    # `direct-tls` on the https path) in this same scenario
    baseline: tuple[str, str] | None = None

    def pair(self) -> tuple[str, str]:
        return self.baseline or ("direct-tls" if self.tls else "direct", self.name)


TLS_HOLD = f"tls_hold_{HOLD_STREAMS}"
TLS_BODY_KB = 120  # a long Claude Code session's request
QUICK_TLS = ("tls_nonstream_c1", "tls_nonstream_c32", "tls_stream50_c32", TLS_HOLD)


def scenarios(quick: bool = False) -> list[Scenario]:
    """The cleartext scenarios, then the https path's (`tls_*`; `--quick` keeps those the checks
    read)."""
    d = 0.8 if quick else 4.0
    drip = (5, 100) if quick else (10, 100)  # deltas × ms: each held stream lasts ~0.5 s / ~1 s
    tls = [
        Scenario("tls_nonstream_c1", 1, duration=d, cap=d + 20, tls=True),
        Scenario("tls_nonstream_c32", 32, duration=d, cap=d + 20, tls=True),
        Scenario("tls_stream50_c1", 1, stream=True, deltas=50, duration=d, cap=d + 20, tls=True),
        Scenario("tls_stream50_c32", 32, stream=True, deltas=50, duration=d, cap=d + 20, tls=True),
        # paired with the cleartext hold's `direct`: straight to the TLS port the load generator would
        # itself make the 1,000 handshakes a proxy's plain-HTTP clients never make (slower than any proxy)
        Scenario(TLS_HOLD, HOLD_STREAMS, stream=True, deltas=drip[0], delay_ms=drip[1],
                 total=HOLD_STREAMS, cap=30.0, tls=True, baseline=("direct", f"hold_{HOLD_STREAMS}")),
        Scenario(f"tls_body{TLS_BODY_KB}k_c32", 32, stream=True, duration=d, cap=d + 20, tls=True,
                 body_kb=TLS_BODY_KB),
    ]
    if quick:
        tls = [sc for sc in tls if sc.name in QUICK_TLS]
    return [
        Scenario("nonstream_c1", 1, duration=d, cap=d + 20),
        Scenario("nonstream_c32", 32, duration=d, cap=d + 20),
        Scenario("stream50_c32", 32, stream=True, deltas=50, duration=d, cap=d + 20),
        Scenario(f"hold_{HOLD_STREAMS}", HOLD_STREAMS, stream=True, deltas=drip[0],
                 delay_ms=drip[1], total=HOLD_STREAMS, cap=30.0),
        Scenario("convert_c32", 32, convert=True, duration=d, cap=d + 20),
        *tls,
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
        *tls_checks(combined),
        *store_checks(combined),
    ]
    return out


STORE_CHECK_PREFIX = "postgresql store:"
STORE_PAIRS = {"ccp-pg": "ccp"}  # a store variant -> the default it is paired with, round by round
STORE_CPU_LIMIT = 1.1  # × the SQLite default's CPU per request


def store_checks(combined: dict) -> list[dict]:
    """`ccp-pg` against `ccp`: CPU per request in the two 32-client scenarios."""
    def rel(scenario: str) -> float | None:
        return ratio(_get(combined, "ccp-pg", scenario, "cpu_ms_per_req"),
                     _get(combined, "ccp", scenario, "cpu_ms_per_req"))

    return [
        verdict(f"{STORE_CHECK_PREFIX} CPU/request ÷ ccp's (non-stream, 32 clients)",
                rel("nonstream_c32"), STORE_CPU_LIMIT, unit="×"),
        verdict(f"{STORE_CHECK_PREFIX} CPU/request ÷ ccp's (stream 50 deltas, 32 clients)",
                rel("stream50_c32"), STORE_CPU_LIMIT, unit="×"),
    ]


def store_ratios(combined: dict) -> list[dict]:
    """Per scenario both store variants ran (in the scenarios' order): each one's CPU per request
    and added p50 (against `direct`), the PostgreSQL row ÷ the SQLite row, the p50 difference
    paired round by round (`p50_vs_base_ms`, set by the runner) and the database server's own CPU
    per request (not in the shim's)."""
    rows = []
    for target, base in STORE_PAIRS.items():
        for scenario, c in (combined.get(target) or {}).items():
            b = (combined.get(base) or {}).get(scenario)
            if b is None:
                continue
            rows.append({
                "scenario": scenario, "target": target, "base": base,
                "cpu_ms_per_req": c.get("cpu_ms_per_req"), "base_cpu_ms_per_req": b.get("cpu_ms_per_req"),
                "cpu_ratio": ratio(c.get("cpu_ms_per_req"), b.get("cpu_ms_per_req")),
                "added_p50_ms": c.get("added_p50_ms"), "base_added_p50_ms": b.get("added_p50_ms"),
                "added_p50_ratio": ratio(c.get("added_p50_ms"), b.get("added_p50_ms")),
                "p50_vs_base_ms": c.get("p50_vs_base_ms"),
                "db_cpu_ms_per_req": c.get("db_cpu_ms_per_req")})
    return rows


TLS_CCP, TLS_FLOOR = "ccp-tls", "floor-tls"


def tls_checks(combined: dict) -> list[dict]:
    """The https path's targets: ccp with its defaults (`ccp-tls`) against the bare TLS relay."""
    def rel(scenario: str, key: str) -> float | None:
        return ratio(_get(combined, TLS_CCP, scenario, key), _get(combined, TLS_FLOOR, scenario, key))

    return [
        verdict("https: CPU/request ÷ floor-tls's (non-stream, 32 clients)",
                rel("tls_nonstream_c32", "cpu_ms_per_req"), 1.2, unit="×"),
        verdict("https: CPU/request ÷ floor-tls's (stream 50 deltas, 32 clients)",
                rel("tls_stream50_c32", "cpu_ms_per_req"), 1.2, unit="×"),
        verdict("https: added p50 at 1 client ÷ floor-tls's",
                rel("tls_nonstream_c1", "added_p50_ms"), 1.2, unit="×"),
        verdict(f"https: errors holding {HOLD_STREAMS} streams",
                _get(combined, TLS_CCP, TLS_HOLD, "errors"), 0),
        verdict(f"https: added TTFB holding {HOLD_STREAMS} streams ÷ floor-tls's",
                rel(TLS_HOLD, "added_ttfb_ms"), 1.5, unit="×"),
        verdict(f"https: peak RSS holding {HOLD_STREAMS} streams ÷ floor-tls's",
                rel(TLS_HOLD, "peak_rss_mb"), 1.2, unit="×"),
    ]


TLS_RATIO_COLUMNS = (  # (heading, scenario, key): each ccp-tls* row ÷ floor-tls's
    ("CPU/req non-stream c32", "tls_nonstream_c32", "cpu_ms_per_req"),
    ("CPU/req stream c32", "tls_stream50_c32", "cpu_ms_per_req"),
    ("CPU/req 120 KB c32", f"tls_body{TLS_BODY_KB}k_c32", "cpu_ms_per_req"),
    ("added p50 c1", "tls_nonstream_c1", "added_p50_ms"),
    ("added p50 stream c1", "tls_stream50_c1", "added_p50_ms"),
    ("held added TTFB", TLS_HOLD, "added_ttfb_ms"),
    ("held peak RSS", TLS_HOLD, "peak_rss_mb"),
)


def tls_ratios(combined: dict) -> list[dict]:
    """Every https-path proxy row (floor-tls, ccp-tls, ccp-tls-…, the peers' and the candidate
    clients' relays) as ratios to floor-tls, with the
    held streams' errors and, at 32 clients non-stream, the handshakes per round and h2's share."""
    rows = []
    names = [TLS_FLOOR] + sorted(t for t in combined if t.startswith(TLS_CCP)) + sorted(
        t for t in combined if t.endswith("-tls") and t not in (TLS_FLOOR, TLS_CCP, "direct-tls")
        or t.startswith("relay-tls-"))
    for target in names:
        if target not in combined:
            continue
        row = {"target": target,
               "ratios": {h: ratio(_get(combined, target, s, k), _get(combined, TLS_FLOOR, s, k))
                          for h, s, k in TLS_RATIO_COLUMNS},
               "hold_errors": _get(combined, target, TLS_HOLD, "errors"),
               "handshakes": _get(combined, target, "tls_nonstream_c32", "handshakes"),
               "hold_handshakes": _get(combined, target, TLS_HOLD, "handshakes"),
               "h2_share": _get(combined, target, "tls_nonstream_c32", "h2_share")}
        rows.append(row)
    return rows


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
    """The load one scenario puts on one target (the scenario's own body size if it has one; the
    target's CA when the load generator itself talks TLS, as to `direct-tls`)."""
    body = request_body(target.model(sc.convert), sc.stream, sc.body_kb or body_kb)
    ca = target.ca if target.url.startswith("https://") else None
    return LoadSpec(url=target.url + "/v1/messages", body=body, headers=HEADERS,
                    concurrency=sc.concurrency, stream=sc.stream, total=sc.total,
                    duration=sc.duration, cap=sc.cap, ca=ca)
