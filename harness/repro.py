"""`ccp repro`: the main job — mock upstreams (or real ones), the shim, probes, METRICS, gates.

With no keys it runs entirely on loopback: two mock upstreams (anthropic, and zai under its
`/api/anthropic` prefix), the real `ccp serve` process, haiku and sonnet probes through the real
`claude` CLI, real curl, raw HTTP and the official SDK (stream and non-stream), one long SSE stream,
(`--front mitm`: the same probes keep https://api.anthropic.com and go through `ccp mitm` as
HTTPS_PROXY to TLS mocks; artifacts are named `mitm_repro`),
then `results/METRICS_<run>.json`, `results/<run>-SUMMARY.md`, a copy of the run's usage log, and the
gate verdicts. Exit 1 when a gate fails. The run's shim keeps its usage log, store and quota book in
`results/runs/<run>/` (emptied first), never in the daily `logs/`: a repro beside a running `ccp up`
leaves that shim's files and quotas alone. Ctrl-C stops the probes, the shim and the mocks, and the
run still writes what it has and its `results/TESTS.md` entry (exit 130). With `ALLOW_REAL_API=1`
and real keys in the environment the
shim talks to the real upstreams instead. `--quick` is 1× haiku and 1× sonnet through the CLI only.
"""
from __future__ import annotations

import argparse
import json
import os
import secrets as secrets_mod
import shutil
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from harness.cli_probe import claude_version, find_claude
from harness.gates import (
    CredentialCheck,
    GateResult,
    HeaderCheck,
    HoldCheck,
    RequestCount,
    RouteCheck,
    StreamPair,
    ToggleCheck,
    compressed_relayed_exact,
    credentials_at_mocks,
    first_event_before_end,
    format_verdicts,
    no_hop_or_own_headers,
    no_secret_in_files,
    one_record_per_request,
    providers_resolve,
    readyz_ok,
    rotated_before_run,
    routes_at_mocks,
    run_gates,
    sse_byte_exact,
    toggles_effective,
)
from harness.hygiene import check_anthropic_calls, check_zai_calls
from harness.keys import lane_env, test_keys
from harness.mock_upstream import MockUpstream, RecordedCall
from harness.probe_kinds import probe
from harness.probes import ProbeResult, attach_records
from harness.progress import progress_bar
from harness.shim import FRONTS, HttpsProxy, ShimProcess, front_process, run_env, run_folder
from proxy.cli.providers import providers_view
from proxy.config.load import load_settings
from proxy.core.parse import ConfigError
from proxy.core.record import utc_timestamp
from proxy.core.redact import redact_text
from proxy.sinks.usage_log import rotate_usage
from reports.results_log import append_entry
from reports.summarize import render_summary, summarize, write_metrics
from reports.usage_io import read_records, to_frame

HAIKU_MODEL = "claude-haiku-4-5-20251001"
SONNET_MODEL = "claude-sonnet-4-5-20250929"
LONG_STREAM_DELTAS = 2000
KINDS = ("cli", "curl", "http", "sdk")
TOGGLES = ("FORCE_HAIKU_TO_ZAI", "OFFLOAD_PAUSED", "ZAI_HEADER_MODE", "MITM_FILTER_CHAIN",
           "MITM_FORCE_H1", "ENABLE_BODY_TEE")


# The character every streamed answer carries, so the mock can split it across two writes
# (harness.mock_upstream wire="repro"): a relay that decodes and re-encodes text shows.
SPLIT_CHAR = "\u00e9"
# The toggles the operators' runbooks name, each probed by one haiku turn through a shim started with
# it set, and what it must change at the upstream mocks (or in the files it writes). MITM_FILTER_CHAIN
# and MITM_PORT belong to `ccp mitm` only.
OVERRIDE_MODEL = "claude-opus-4-1-20250805"
TOGGLE_PROBES: tuple[tuple[str, str, dict], ...] = (
    ("OFFLOAD_PAUSED", "1", {"mock": "anthropic"}),
    ("FORCE_HAIKU_TO_ZAI", "0", {"mock": "anthropic"}),
    ("ZAI_HEADER_MODE", "authorization", {"mock": "zai", "credential_header": "authorization"}),
    ("CCP_MODEL", OVERRIDE_MODEL, {"mock": "anthropic", "model": OVERRIDE_MODEL}),
    ("ENABLE_BODY_TEE", "1", {"mock": "zai", "tee_files": 1}),
    ("MITM_FORCE_H1", "1", {"mock": "zai", "http_version": "1.1"}),
)
NOT_PROBED_TOGGLES = ("MITM_FILTER_CHAIN (ccp mitm only)",)


@dataclass
class Planned:
    kind: str
    model: str
    stream: bool
    expect_lane: str
    token: str
    deltas: int | None = None
    headers: dict = field(default_factory=dict)  # extra request headers (mock faults)
    # the client's credential: None its own key; "session" the sandbox session token; "none" no
    # credential at all; "zai_key" / "catalog_key" a key of another lane as x-api-key,
    # "zai_bearer" the Z.AI key as `authorization: Bearer`
    auth: str | None = None
    expect: str = "answer"  # or "partial": the stream is cut, a partial file must be left; or
    # "error": the upstream failed (a 500, a connection cut before any header)
    controls: dict | None = None  # POSTed to /v1/admin/controls just before this probe
    expect_auth: dict | None = None  # the credential headers its mock must see, exactly
    expect_model: str | None = None  # the model its mock must be asked for (default: `model`)
    first_event: bool = False  # the mock holds the rest until the client has read the first event


def marker(token: str) -> str:
    """What identifies a probe's request in what the mocks received."""
    return f"exactly: {token} and nothing else"


def plan(rounds: int, haiku: str, sonnet: str, long_stream: bool,
         kinds: tuple[str, ...] = KINDS) -> list[Planned]:
    """Per round and model: the CLI (it always streams), curl and one of http/sdk, each stream and
    non-stream; then one long SSE stream. Models for the CLI are its aliases (`haiku`, `sonnet`)."""
    items: list[Planned] = []
    for r in range(rounds):
        library = ("http", "sdk")[r % 2]
        for model, alias, lane in ((haiku, "haiku", "zai"), (sonnet, "sonnet", "anthropic")):
            family = alias.upper()
            if "cli" in kinds:
                items.append(Planned("cli", alias, True, lane,
                                     f"CCP_{family}_CLI{r + 1}{SPLIT_CHAR}"))
            for kind in ("curl", library):
                if kind not in kinds:
                    continue
                for stream in (False, True):
                    token = f"CCP_{family}_{kind.upper()}_{'S' if stream else 'N'}{r + 1}"
                    items.append(Planned(kind, model, stream, lane,
                                         token + (SPLIT_CHAR if stream else "")))
    if long_stream and "http" in kinds:
        items.append(Planned("http", sonnet, True, "anthropic", "CCP_REPRO_LONG", LONG_STREAM_DELTAS))
    return items


def quick_plan() -> list[Planned]:
    """1× haiku and 1× sonnet through the CLI (the operators' repro-go-quick)."""
    return [Planned("cli", "haiku", True, "zai", "CCP_QUICK_HAIKU"),
            Planned("cli", "sonnet", True, "anthropic", "CCP_QUICK_SONNET")]


def secret_plan(haiku: str, sonnet: str, keys: dict[str, str]) -> list[Planned]:
    """Probes whose answers carry a secret, so the files they leave are worth scanning: two turns
    of a sandbox session (its token as the client's credential: trajectory files) and one stream
    cut mid-way (a partial). Each lane's own key is the secret its answer carries."""
    zai_key, anth_key = keys["ZAI_API_KEY"], keys["ANTHROPIC_AUTH_TOKEN"]
    return [
        Planned("http", haiku, True, "zai", f"CCP_SESSION_H{SPLIT_CHAR}_{zai_key}", auth="session"),
        Planned("http", sonnet, False, "anthropic", f"CCP_SESSION_S_{anth_key}", auth="session"),
        # message_start, content_block_start, ping, the one delta: then the connection drops
        Planned("http", haiku, True, "zai", f"CCP_PARTIAL_H_{zai_key}", expect="partial",
                headers={"x-mock-fault": "reset_mid_stream;after=4", "x-mock-deltas": "1"}),
    ]


# A catalog provider on a mock of its own (OpenAI protocol, its own key) with a route that renames
# the model: the probe through it shows the rename and the key at that mock, and its key, sent by a
# client on the anthropic lane, must be replaced there by the shim's own token.
CATALOG = "catalog"
CATALOG_KEY_ENV = "CCP_REPRO_CATALOG_KEY"
CATALOG_KEY = "ccp-repro-catalog-key-4d7e19a3"
CATALOG_ROUTE = "ccp-repro-alias"
CATALOG_MODEL = "repro-upstream-model"
# Request headers no upstream may see: the shim's own (x-ccp-*), hop-by-hop ones, and one that
# `connection` names. Each value is recognisable, so the gate compares values, not just names.
FORBIDDEN_HEADERS = {"x-ccp-actor": "ccp repro", "x-ccp-admin-token": "ccp-repro-not-an-admin-token",
                     "connection": "keep-alive, x-repro-hop", "x-repro-hop": "ccp-repro-hop",
                     "keep-alive": "timeout=7", "proxy-authorization": "Basic Y2NwLXJlcHJvOmhvcA==",
                     "proxy-connection": "keep-alive", "te": "trailers"}
GZIP = {"x-mock-fault": "gzip"}
# the mock sends message_start, then holds the rest until the client has read it (or 5 s pass)
HOLD = {"x-mock-fault": "hold;after=1;seconds=5"}


def property_plan(haiku: str, sonnet: str, keys: dict[str, str]) -> list[Planned]:
    """Probes for what the lane credentials, the routing and the relay must do, each with what its
    mock must see: opus; no client credential and foreign ones (the shim's token as Bearer
    instead); hop-by-hop and x-ccp-* headers; a catalog route; compressed answers; a stream whose
    first event must arrive before the rest is sent; upstream failures (still one record each); a
    runtime pause and resume of a model already routed."""
    shim_bearer = {"authorization": f"Bearer {keys['ANTHROPIC_AUTH_TOKEN']}"}
    return [
        Planned("http", OVERRIDE_MODEL, False, "anthropic", "CCP_OPUS_N"),
        Planned("http", OVERRIDE_MODEL, True, "anthropic", f"CCP_OPUS_S{SPLIT_CHAR}"),
        Planned("http", sonnet, False, "anthropic", "CCP_NO_CREDENTIAL", auth="none",
                expect_auth=shim_bearer),
        Planned("http", sonnet, True, "anthropic", f"CCP_ZAI_KEY_AS_CLIENT{SPLIT_CHAR}",
                auth="zai_key", expect_auth=shim_bearer),
        Planned("http", sonnet, False, "anthropic", "CCP_ZAI_BEARER_AS_CLIENT", auth="zai_bearer",
                expect_auth=shim_bearer),
        Planned("http", sonnet, False, "anthropic", "CCP_CATALOG_KEY_AS_CLIENT", auth="catalog_key",
                expect_auth=shim_bearer),
        Planned("http", haiku, False, "zai", "CCP_HOP_H", headers=FORBIDDEN_HEADERS,
                expect_auth={"x-api-key": keys["ZAI_API_KEY"]}),
        Planned("http", sonnet, True, "anthropic", f"CCP_HOP_S{SPLIT_CHAR}",
                headers=FORBIDDEN_HEADERS),
        Planned("http", CATALOG_ROUTE, False, CATALOG, "CCP_CATALOG_ROUTE",
                expect_model=CATALOG_MODEL, expect_auth={"authorization": f"Bearer {CATALOG_KEY}"}),
        Planned("http", haiku, False, "zai", "CCP_GZIP_N", headers=GZIP),
        Planned("http", sonnet, True, "anthropic", "CCP_GZIP_S", headers=GZIP),
        Planned("http", sonnet, True, "anthropic", "CCP_FIRST_EVENT", headers=HOLD,
                first_event=True),
        Planned("http", haiku, False, "zai", "CCP_FAIL_500", expect="error",
                headers={"x-mock-fault": "status=500"}),
        Planned("http", haiku, True, "zai", "CCP_FAIL_CUT", expect="error",
                headers={"x-mock-fault": "reset_before_headers"}),
        # the same haiku id as the probes before: a decision kept from before the pause must not be
        Planned("http", haiku, False, "anthropic", "CCP_CONTROL_PAUSED", controls={"paused": True}),
        Planned("http", haiku, False, "zai", "CCP_CONTROL_RESUMED", controls={"paused": False}),
    ]


def catalog_file(folder: Path, base_url: str) -> Path:
    """The providers file of the catalog probe: one OpenAI-protocol provider and its route."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "providers.yaml"
    path.write_text(f"providers:\n  {CATALOG}:\n    protocol: openai\n"
                    f"    base_url: {base_url}/v1\n    key_env: {CATALOG_KEY_ENV}\n"
                    f"    routes:\n      - name: {CATALOG_ROUTE}\n        model: {CATALOG_MODEL}\n")
    return path


def _control(url: str, updates: dict) -> None:
    httpx.post(f"{url}/v1/admin/controls", json=updates, timeout=10,
               trust_env=False).raise_for_status()


def _fire(item: Planned, base_url: str, client_auth: dict, cli_timeout: float,
          via: HttpsProxy | None = None, on_first_event=None) -> ProbeResult:
    prompt = f"Reply with exactly: {item.token} and nothing else."
    if item.kind == "cli":
        return probe("cli", base_url, item.model, prompt, timeout=cli_timeout,
                     auth_token=client_auth.get("cli_token"), via=via)
    kw = {"stream": item.stream, "api_key": client_auth.get("api_key"), "via": via}
    if item.auth == "session":  # as x-api-key on one turn, as a bearer on the other
        kw["api_key"] = None
        kw["api_key" if item.expect_lane == "zai" else "auth_token"] = client_auth["session_token"]
    elif item.auth == "none":
        kw["api_key"] = None
    elif item.auth in ("zai_key", "catalog_key"):
        kw["api_key"] = client_auth[item.auth]
    elif item.auth == "zai_bearer":
        kw["api_key"], kw["auth_token"] = None, client_auth["zai_key"]
    if on_first_event is not None:
        kw["on_first_event"] = on_first_event
    headers = dict(item.headers)
    if item.deltas:
        headers["x-mock-deltas"] = str(item.deltas)
    if headers:
        kw["extra_headers"] = headers
    return probe(item.kind, base_url, item.model, prompt, **kw)


def _probe_checks(items: list[Planned], results: list[ProbeResult], found: dict[int, dict],
                  records: list[dict]) -> list[GateResult]:
    problems: list[str] = []
    lane_problems: list[str] = []
    for i, (item, res) in enumerate(zip(items, results, strict=False)):
        label = f"{item.kind}/{item.model}/{'stream' if item.stream else 'nonstream'}"
        if item.expect == "partial":
            if res.status != 200:
                problems.append(f"{label}: status {res.status}, expected 200 then a cut stream")
        elif item.expect == "error":
            if res.status is None or res.status < 500:
                problems.append(f"{label}: status {res.status}, expected the upstream's failure")
        elif not res.ok:
            problems.append(f"{label}: status {res.status} {res.error or ''}".strip())
        elif item.deltas is None and res.text.strip() != item.token:
            problems.append(f"{label}: answered {res.text[:40]!r}, expected {item.token!r}")
        rec = found.get(i)
        if rec is None:
            lane_problems.append(f"{label}: no usage record found")
        elif rec.get("lane") != item.expect_lane:
            lane_problems.append(f"{label}: lane {rec.get('lane')}, expected {item.expect_lane}")
    # (records that belong to no probe: one_record_per_request)
    return [
        GateResult("probes_answered", not problems,
                   f"{len(results)} probe(s) answered as asked" if not problems
                   else "; ".join(problems[:3])),
        GateResult("probes_routed", not lane_problems,
                   "every probe has one record on the expected lane" if not lane_problems
                   else "; ".join(lane_problems[:3])),
    ]


def _mock_cas(mocks: tuple[MockUpstream, MockUpstream], folder: Path) -> Path:
    """One PEM with both TLS mocks' CAs (CCP_CA_BUNDLE for the front that talks to them)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / "mock-cas.pem"
    out.write_text("".join(Path(m.ca_path).read_text() for m in mocks))
    return out


MockCalls = list[tuple[str, RecordedCall]]  # (mock name, call), as the mocks recorded them


def _call_text(call: RecordedCall) -> str:
    if call.json is not None:
        return json.dumps(call.json, ensure_ascii=False)
    return call.body.decode("utf-8", errors="replace")


def _hits(item: Planned, calls: MockCalls) -> MockCalls:
    return [(name, c) for name, c in calls if marker(item.token) in _call_text(c)]


def _label(item: Planned) -> str:
    return f"{item.kind}/{item.model}/{'stream' if item.stream else 'nonstream'}/{item.token[:20]}"


def _long_stream_check(items: list[Planned], results: list[ProbeResult],
                       calls: MockCalls) -> GateResult:
    longs = [(item, res) for item, res in zip(items, results, strict=True) if item.deltas]
    if not longs:
        return GateResult("long_sse_byte_exact", True, "no long stream planned")
    item, res = longs[0]
    sent = [c.sent for name, c in _hits(item, calls) if name == "anthropic"]
    ok = len(sent) == 1 and sent[0] == res.raw
    detail = (f"{len(res.raw)} bytes relayed identically" if ok else
              f"client got {len(res.raw)} bytes, mock sent {[len(s) for s in sent]}")
    return GateResult("long_sse_byte_exact", ok, detail)


def _stream_pairs(items: list[Planned], results: list[ProbeResult],
                  calls: MockCalls) -> list[StreamPair]:
    """Every passthrough stream whose client keeps the bytes (raw HTTP, curl), with what its mock
    sent (the long stream has its own gate)."""
    pairs = []
    for item, res in zip(items, results, strict=True):
        if item.stream and item.kind in ("http", "curl") and item.expect == "answer" \
                and not item.deltas and item.headers != GZIP and item.expect_lane != CATALOG:
            hits = [c for _, c in _hits(item, calls)]
            pairs.append(StreamPair(_label(item), res.raw, [c.sent for c in hits],
                                    sum(c.utf8_splits for c in hits)))
    return pairs


CREDENTIAL_NAMES = ("authorization", "x-api-key")


def _property_checks(items: list[Planned], results: list[ProbeResult], calls: MockCalls,
                     extras: bool) -> list[GateResult]:
    """The gates of `property_plan`, on what the mocks received for each probe (routes_at_mocks
    on every probe)."""
    routes, creds, heads, squeezed, holds = [], [], [], [], []
    for item, res in zip(items, results, strict=True):
        hits = _hits(item, calls)
        label = _label(item)
        model = None if item.kind == "cli" else item.expect_model or item.model
        routes.append(RouteCheck(label, item.expect_lane, model,
                                 [(n, (c.json or {}).get("model")) for n, c in hits]))
        if item.expect_auth is not None:
            creds.append(CredentialCheck(label, item.expect_auth, [
                {k: v for k, v in c.headers.items() if k in CREDENTIAL_NAMES} for _, c in hits]))
        if item.headers == FORBIDDEN_HEADERS:
            heads.append(HeaderCheck(label, item.headers, [c.headers for _, c in hits]))
        if item.headers == GZIP:
            squeezed.append(StreamPair(label, res.raw, [c.sent for _, c in hits]))
        if item.first_event:
            holds.append(HoldCheck(label, [c.hold for _, c in hits]))
    na = [] if extras else ["needs ccp serve, the mocks and the http probe"]
    verdicts = [routes_at_mocks(routes), credentials_at_mocks(creds, na),
                no_hop_or_own_headers(heads, [c.headers for _, c in calls], required=extras),
                compressed_relayed_exact(squeezed, required=extras),
                first_event_before_end(holds, required=extras)]
    # (routes_at_mocks applies to every probe; the others to the property probes only)
    return [v if extras or not v.ok or "not applicable" in v.detail or v.name == "routes_at_mocks"
            else v._replace(detail=f"{v.detail}; not applicable here: {na[0]}") for v in verdicts]


def _request_counts(items: list[Planned], results: list[ProbeResult], records: list[dict],
                    calls: MockCalls) -> tuple[list[RequestCount], list[dict], list[str]]:
    """Per probe: its upstream calls (by its token) and its records (by rid, else by Claude Code's
    session id); then the records and the calls no probe claims."""
    model_records = [r for r in records if r.get("op") != "control"]
    claimed: set[int] = set()
    counts = []
    for item, res in zip(items, results, strict=True):
        if res.rid:
            mine = [r for r in model_records if r.get("rid") == res.rid]
        elif res.session_id:
            mine = [r for r in model_records if r.get("client_session") == res.session_id]
        else:
            mine = []
        claimed.update(id(r) for r in mine)
        counts.append(RequestCount(_label(item), len(_hits(item, calls)), len(mine)))
    markers = [marker(i.token) for i in items]
    unclaimed_calls = [f"{name} {c.method} {c.path}" for name, c in calls
                       if not any(m in _call_text(c) for m in markers)]
    return counts, [r for r in model_records if id(r) not in claimed], unclaimed_calls


def _hygiene_checks(calls: MockCalls, modes: dict[int, str], default_mode: str,
                    session_tokens: list[str]) -> list[GateResult]:
    """Lane credentials on every call each mock received: `modes` gives the ZAI_HEADER_MODE a call
    was made under (by its index in `calls`), else `default_mode`."""
    keys = test_keys()
    zai = [(i, c) for i, (name, c) in enumerate(calls) if name == "zai"]
    anth = [c for name, c in calls if name == "anthropic"]
    return [check_zai_calls([c.headers for _, c in zai], keys["ZAI_API_KEY"],
                            [keys["ANTHROPIC_AUTH_TOKEN"], keys["CLIENT_API_KEY"],
                             keys["CLIENT_OAUTH_TOKEN"]],
                            [modes.get(i, default_mode) for i, _ in zai], session_tokens),
            check_anthropic_calls([c.headers for c in anth], keys["ZAI_API_KEY"], session_tokens,
                                  allowed=[keys["ANTHROPIC_AUTH_TOKEN"], keys["CLIENT_API_KEY"],
                                           keys["CLIENT_OAUTH_TOKEN"]])]


def _credential_header(headers: dict[str, str]) -> str:
    has = [h for h in ("authorization", "x-api-key") if h in headers]
    return "+".join(has) or "none"


def _toggle_turn(name: str, value: str, expect: dict, mocks: tuple[MockUpstream, MockUpstream],
                 logs_dir: Path, haiku: str, client_auth: dict
                 ) -> tuple[Planned, ProbeResult, list[dict], Path]:
    """One haiku turn through a shim of its own started with `name=value`."""
    folder = logs_dir / "toggles" / name.lower()
    env = {**lane_env(mocks[0].base_url, mocks[1].zai_base_url), name: value}
    # the tee sample's request carries a key, so the secret scan of tee files means something
    secret = f"_{test_keys()['ZAI_API_KEY']}" if name == "ENABLE_BODY_TEE" else ""
    item = Planned("http", haiku, False, expect["mock"], f"CCP_TOGGLE_{name}{secret}")
    with ShimProcess(folder, env) as shim:
        res = _fire(item, shim.url, client_auth, 60.0)
        shim.wait_for_records(1)
        return item, res, shim.records(), folder


def _toggle_phase(mocks: tuple[MockUpstream, MockUpstream], logs_dir: Path, haiku: str,
                  client_auth: dict) -> tuple[list[ToggleCheck], list[Planned], list[ProbeResult],
                                              list[dict], MockCalls, dict[int, str]]:
    """One haiku turn through a shim started with each runbook toggle set (each its own process and
    logs folder under `toggles/`, all at once; a turn's calls are told apart by its token), and what
    the mocks and the folder saw. Returns the checks, the probes, their results and records, every
    call the mocks received, and the ZAI_HEADER_MODE of each call (by its index) where not the
    default."""
    for m in mocks:
        m.reset()
    with ThreadPoolExecutor(max_workers=len(TOGGLE_PROBES)) as pool:
        turns = list(pool.map(lambda t: _toggle_turn(*t, mocks, logs_dir, haiku, client_auth),
                              TOGGLE_PROBES))
    calls: MockCalls = [("anthropic", c) for c in mocks[0].calls] + \
        [("zai", c) for c in mocks[1].calls]
    checks: list[ToggleCheck] = []
    modes: dict[int, str] = {}
    records: list[dict] = []
    for (name, value, expect), (item, res, recs, folder) in zip(TOGGLE_PROBES, turns, strict=True):
        records += recs
        hits = _hits(item, calls)
        if name == "ZAI_HEADER_MODE":
            mine = {id(c) for _, c in hits}
            modes.update({i: value for i, (_, c) in enumerate(calls) if id(c) in mine})
        first = hits[0][1] if hits else None
        seen = {"answered": res.ok and res.text.strip() == item.token,
                "mock": "+".join(sorted({n for n, _ in hits})) or None,
                "credential_header": _credential_header(first.headers) if first else None,
                "model": (first.json or {}).get("model") if first else None,
                "tee_files": len(list((folder / "tee").glob("*.json"))),
                "http_version": first.version if first else None}
        checks.append(ToggleCheck(f"{name}={value}", {"answered": True, **expect}, seen))
    return (checks, [t[0] for t in turns], [t[1] for t in turns], records, calls, modes)


def _masked_row(res: ProbeResult, secrets: list[str]) -> dict:
    row = res.row()
    row["text"] = redact_text(row["text"], secrets)
    return row


def _print_table(items: list[Planned], results: list[ProbeResult], found: dict[int, dict]) -> None:
    print(f"{'probe':<6}{'model':<28}{'op':<10}{'status':<7}{'lane':<10}{'decision':<15}"
          f"{'ttfb_ms':>9}{'latency_ms':>11}")
    for i, (item, res) in enumerate(zip(items, results, strict=False)):
        rec = found.get(i, {})
        print(f"{item.kind:<6}{item.model[:27]:<28}{'stream' if item.stream else 'nonstream':<10}"
              f"{str(res.status):<7}{str(rec.get('lane')):<10}{str(rec.get('decision')):<15}"
              f"{_num(rec.get('ttfb_ms')):>9}{_num(rec.get('latency_ms')):>11}")


def _num(value) -> str:
    return f"{value:.1f}" if isinstance(value, (int, float)) else "-"


def _versions(cli_binary: str | None) -> dict:
    from importlib.metadata import PackageNotFoundError, version
    try:
        ccp_version = version("ccp")
    except PackageNotFoundError:
        ccp_version = "unknown"
    return {"ccp": ccp_version, "claude": claude_version(cli_binary) if cli_binary else None,
            "python": sys.version.split()[0], "curl": shutil.which("curl") is not None}


def _readyz(url: str) -> dict | None:
    try:
        return httpx.get(url, timeout=10, trust_env=False).json()
    except (httpx.HTTPError, ValueError):
        return None


def run(args: argparse.Namespace) -> int:
    settings = load_settings()
    results_dir = Path(args.results or settings.results_dir).resolve()
    mitm = args.front == "mitm"
    run_name = args.run or ("mitm_" if mitm else "") + ("repro_quick" if args.quick else "repro")
    # the run's own folder, never the daily logs (their usage log, store and quota book stay as they are)
    logs_dir = Path(args.logs).resolve() if args.logs else run_folder(results_dir, run_name)
    real = settings.allow_real_api and bool(settings.zai_api_key) and bool(
        settings.anthropic_auth_token or settings.anthropic_api_key)
    if settings.allow_real_api and not real:
        print("[repro] ALLOW_REAL_API=1 but ZAI_API_KEY and an Anthropic credential are not both "
              "set: using the mock upstreams", file=sys.stderr)
    rotated = rotate_usage(logs_dir)
    print(f"[repro] run={run_name} front={args.front} logs={logs_dir}"
          + (f" (previous usage rotated to {rotated.name})" if rotated else ""))
    run_started = utc_timestamp()

    cli_binary = find_claude()
    kinds = tuple(k for k in args.kinds.split(",") if k) if args.kinds else KINDS
    skipped: list[str] = []
    if "cli" in kinds and not cli_binary:
        kinds = tuple(k for k in kinds if k != "cli")
        skipped.append("cli probes: the claude CLI is not installed (make claude)")
    mocks: tuple[MockUpstream, MockUpstream] | None = None
    catalog: MockUpstream | None = None
    # the secret-carrying probes (trajectories, a partial), the property probes and the toggles
    # need the mocks and ccp serve
    extras = not real and not mitm and not args.quick and "http" in kinds
    toggles = {k: os.environ[k] for k in TOGGLES if k in os.environ}
    if real:
        env = run_env()
        # the CLI carries the operator's own credential; curl/http/sdk send none, so the shim adds it
        client_auth = {"cli_token": settings.anthropic_auth_token.reveal() or None}
        print("[repro] upstreams: REAL (ALLOW_REAL_API=1)")
    else:
        # HTTPS_PROXY mode reaches its upstreams over TLS, as it would reach the real ones
        # the mocks write the harder spellings of SSE (CR LF, comments, split UTF-8)
        mocks = (MockUpstream("anthropic", tls=mitm, wire="repro").start(),
                 MockUpstream("zai", tls=mitm, wire="repro").start())
        env = {**lane_env(mocks[0].base_url, mocks[1].zai_base_url), **toggles}
        if mitm:
            env["CCP_CA_BUNDLE"] = str(_mock_cas(mocks, logs_dir))
        client_auth = {"api_key": test_keys()["CLIENT_API_KEY"],
                       "cli_token": test_keys()["CLIENT_OAUTH_TOKEN"],
                       "session_token": f"ccp-repro-session-{secrets_mod.token_hex(12)}",
                       "zai_key": test_keys()["ZAI_API_KEY"], "catalog_key": CATALOG_KEY}
        if extras:
            catalog = MockUpstream(CATALOG, wire="repro").start()
            env.update({"CCP_PROVIDERS_FILE": str(catalog_file(logs_dir, catalog.base_url)),
                        CATALOG_KEY_ENV: CATALOG_KEY})
        print(f"[repro] upstreams: mock anthropic={mocks[0].base_url} zai={mocks[1].zai_base_url}"
              + (f" {CATALOG}={catalog.base_url}" if catalog else ""))
    for line in skipped:
        print(f"[repro] SKIP {line}")

    if args.quick:
        items = quick_plan() if "cli" in kinds else []
    else:
        items = plan(args.rounds, args.haiku_model, args.sonnet_model, long_stream=not real,
                     kinds=kinds)
    if extras:
        items += secret_plan(args.haiku_model, args.sonnet_model, test_keys())
        items += property_plan(args.haiku_model, args.sonnet_model, test_keys())
    toggle_checks: list[ToggleCheck] = []
    toggle_items: list[Planned] = []
    toggle_results: list[ProbeResult] = []
    toggle_records: list[dict] = []
    calls: MockCalls = []
    modes: dict[int, str] = {}
    results: list[ProbeResult] = []
    readyz = None
    interrupted = False
    try:
        with front_process(args.front, logs_dir, env) as shim:
            print(f"[repro] {args.front} {shim.url} (pid {shim.proc.pid})", flush=True)
            # the mitm's /readyz is on its admin port; clients keep their Anthropic URL there
            readyz = _readyz(f"{shim.admin_url if mitm else shim.url}/readyz")
            if extras:  # the sandbox session the session probes' token belongs to
                httpx.post(f"{shim.url}/v1/sessions", timeout=10, trust_env=False, json={
                    "session_token": client_auth["session_token"], "sandbox_id": "repro",
                    "task_name": "repro"}).raise_for_status()
            with progress_bar(len(items), "probes", enabled=not args.no_progress) as advance:
                by_name = {m.name: m for m in (*(mocks or ()), *([catalog] if catalog else []))}
                for item in items:
                    if item.controls:  # a runtime change, from the next request on
                        _control(shim.url, item.controls)
                    first = by_name[item.expect_lane].release if item.first_event else None
                    results.append(_fire(item, shim.client_url, client_auth, args.cli_timeout,
                                         shim.via, on_first_event=first))
                    advance(f"{item.kind} {item.model}")
            shim.wait_for_records(len(items)) if items else None
        if mocks is not None:
            calls = [("anthropic", c) for c in mocks[0].calls] + [("zai", c) for c in mocks[1].calls]
            calls += [(CATALOG, c) for c in catalog.calls] if catalog else []
        if extras:
            print("[repro] toggles: " + ", ".join(f"{n}={v}" for n, v, _ in TOGGLE_PROBES),
                  flush=True)
            toggle_checks, toggle_items, toggle_results, toggle_records, more, more_modes = \
                _toggle_phase(mocks, logs_dir, args.haiku_model, client_auth)
            modes = {len(calls) + i: m for i, m in more_modes.items()}
            calls += more
    except KeyboardInterrupt:  # the `with` stopped the shim; the mocks stop below
        interrupted = True
        print(f"\n[repro] interrupted after {len(results)} of {len(items)} probe(s): shim and "
              f"mocks stopped; writing what ran", file=sys.stderr, flush=True)
        items = items[:len(results)]
    finally:
        for m in (*(mocks or ()), *([catalog] if catalog else [])):
            m.stop()

    usage_path = logs_dir / "usage.jsonl"
    records, bad_lines = read_records([usage_path]) if usage_path.exists() else ([], 0)
    found = attach_records(results, records)
    _print_table(items, results, found)

    results_dir.mkdir(parents=True, exist_ok=True)
    metrics_path = results_dir / f"METRICS_{run_name}.json"
    metrics = summarize(to_frame(records, bad_lines))
    write_metrics(metrics, metrics_path)  # written first, so metrics_present checks a real file
    verdicts = run_gates(records, metrics_path)
    verdicts.append(rotated_before_run(records, run_started))
    verdicts.append(readyz_ok(readyz))
    verdicts.append(providers_resolve(providers_view(load_settings(env)), need_credentials=real))
    verdicts += _probe_checks(items, results, found, records)
    if interrupted:
        verdicts.append(GateResult("run_complete", False, f"interrupted (Ctrl-C) after "
                                   f"{len(results)} probe(s)"))
    elif not items:
        verdicts.append(GateResult("probes_ran", False, "no probe could run"))
    if mocks is not None:
        verdicts.append(_long_stream_check(items, results, calls))
        pairs = _stream_pairs(items, results, calls)  # (none in --quick: the CLI keeps no bytes)
        verdicts.append(sse_byte_exact(pairs, require_wire=bool(pairs)))
        verdicts += _hygiene_checks(calls, modes, env.get("ZAI_HEADER_MODE", "x-api-key"),
                                    [client_auth["session_token"]])
        verdicts += _property_checks(items, results, calls, extras)
        verdicts.append(toggles_effective(
            toggle_checks, NOT_PROBED_TOGGLES if extras else ["every toggle (needs ccp serve, "
                                                              "the mocks and the http probe)"]))
        verdicts.append(one_record_per_request(*_request_counts(
            items + toggle_items, results + toggle_results, records + toggle_records, calls)))

    known = [*load_settings(env).secrets(), *(test_keys().values() if mocks else []),
             *([client_auth["session_token"], CATALOG_KEY] if mocks else [])]
    # a probe's answer may carry a secret (the secret probes): never shown in what the run writes
    verdicts = [v._replace(detail=redact_text(v.detail, known)) for v in verdicts]
    usage_copy = results_dir / f"{run_name}-usage.jsonl"
    if usage_path.exists():
        shutil.copyfile(usage_path, usage_copy)
    metrics["run"] = {
        "name": run_name, "started_at": run_started, "upstreams": "real" if real else "mock",
        "front": args.front,
        "versions": _versions(cli_binary), "toggles": {**{k: None for k in TOGGLES}, **toggles},
        "gates": [v._asdict() for v in verdicts], "skipped": skipped,
        "probes": [_masked_row(res, known) for res in results + toggle_results],
        "usage_copy": str(usage_copy),
    }
    write_metrics(metrics, metrics_path)
    summary_path = results_dir / (args.summary or f"{run_name}-SUMMARY.md")
    summary_path.write_text(render_summary(metrics, f"ccp {run_name}"))
    # last: every artifact this run wrote, scanned for every secret it knew
    written = {sub: sorted(p for d in logs_dir.rglob(sub) if d.is_dir() for p in d.rglob("*")
                           if p.is_file()) for sub in ("partials", "trajectory", "tee")}
    artifacts = [usage_path, usage_copy, metrics_path, summary_path,
                 *logs_dir.rglob("usage.jsonl"), *[p for files in written.values() for p in files]]
    # when the secret probes and the tee toggle ran, each kind of file must exist to be scanned
    verdicts.append(no_secret_in_files(artifacts, known, written if extras else None))
    append_entry(results_dir, run_name, toggles, verdicts, [metrics_path, summary_path, usage_copy])

    print()
    print(format_verdicts(verdicts))
    print(f"\n[repro] METRICS: {metrics_path}\n[repro] summary: {summary_path}\n"
          f"[repro] usage copy: {usage_copy}")
    failed = [v for v in verdicts if not v.ok]
    print(f"[repro] {'FAILED: ' + ', '.join(v.name for v in failed) if failed else 'all gates passed'}")
    return 130 if interrupted else 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ccp repro", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds of probes (default 3)")
    parser.add_argument("--quick", action="store_true",
                        help="1x haiku + 1x sonnet through the claude CLI only")
    parser.add_argument("--run", help="run name for the artifacts (default repro / repro_quick, "
                                      "mitm_repro / mitm_repro_quick with --front mitm)")
    parser.add_argument("--summary", metavar="FILE", help="the summary's file name in the results "
                        "folder (default <run>-SUMMARY.md; make repro-go: GO-REPRO-SUMMARY.md)")
    parser.add_argument("--front", choices=FRONTS, default="shim",
                        help="shim: clients use ANTHROPIC_BASE_URL=ccp serve (default); mitm: "
                             "clients keep api.anthropic.com and go through `ccp mitm` as "
                             "HTTPS_PROXY (TLS mock upstreams)")
    parser.add_argument("--kinds", help=f"comma-separated probe kinds (default {','.join(KINDS)})")
    parser.add_argument("--cli-timeout", type=float, default=60.0, help="seconds per CLI call")
    parser.add_argument("--logs", help="the run shim's logs folder (default: results/runs/<run>, "
                                       "emptied first; never the daily logs)")
    parser.add_argument("--results", help="results folder (default CCP_RESULTS_DIR or results)")
    parser.add_argument("--haiku-model", default=HAIKU_MODEL, help="haiku model id for the "
                        "curl/http/sdk probes (default %(default)s)")
    parser.add_argument("--sonnet-model", default=SONNET_MODEL, help="sonnet model id for the "
                        "curl/http/sdk probes (default %(default)s)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    try:
        return run(args)
    except ConfigError as exc:
        print(f"ConfigError: {exc}", file=sys.stderr)
        return 2
