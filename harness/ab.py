"""`ccp ab`: an A/B of one shim setting, as ratios between arms of one interleaved run.

`--toggle h1h2` (CCP_HTTP2 = 1 | 0: HTTP/2 through httpx, or the default HTTP/1.1 client), `--toggle header-mode` (ZAI_HEADER_MODE = x-api-key |
authorization) or `--toggle NAME=a,b` (any environment variable). For R rounds (at least 3) the arms
run A B A B …; each arm of each round gets a fresh `ccp serve` process (its own logs folder) with the
arm's value and the same probes: haiku and sonnet, stream and non-stream, per client kind
(`http`, `curl`; `cli` on request), `--repeat` times, after a warm-up request per model that is not
counted. Latency and TTFB are the shim's own (`latency_ms`, `ttfb_ms` of each usage record); the
client's elapsed time is reported too.

Upstreams: built-in mocks (no keys), or for h1h2 by default a TLS mock that offers HTTP/2 (plain-HTTP
upstreams never negotiate h2, so only TLS shows the toggle); with `ALLOW_REAL_API=1`, `ZAI_API_KEY`
and an Anthropic credential, the environment's upstreams. On the built-in mocks the run also checks
that the toggle changed what the upstream saw (HTTP version per arm; the zai credential header per
arm).

Writes `results/AB-<toggle>-<ts>.md` and `.json`: a per-arm table (count, errors by type, p50/p95
latency and TTFB) and the B/A ratio of the p50s paired per round, with its spread (median, IQR,
min–max), and appends an entry to `results/TESTS.md`. The ratios hold for this one run only; the page
makes no absolute claim. Exit 0 ok, 1 a check failed, 2 a usage or configuration error.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import NamedTuple

from harness.bench.stats import percentile
from harness.cli_probe import find_claude
from harness.gates import GateResult, format_verdicts
from harness.keys import lane_env, test_keys
from harness.mock_upstream import MockUpstream
from harness.mock_wire import default_deltas, message_json, reply_text, sse_events
from harness.probe_kinds import probe
from harness.probes import ProbeResult, attach_records
from harness.shim import ShimProcess, run_env, run_folder
from proxy.config.load import load_settings
from proxy.core.parse import ConfigError, truthy
from proxy.core.record import utc_timestamp
from reports.results_log import append_entry
from reports.summarize import fmt
from reports.usage_io import read_records, usage_files

HAIKU_MODEL = "claude-haiku-4-5-20251001"
SONNET_MODEL = "claude-sonnet-4-5-20250929"
KINDS = ("http", "curl", "cli")
DEFAULT_KINDS = ("http", "curl")
MIN_ROUNDS = 3
ARMS = ("A", "B")
ZAI_PREFIX = "/api/anthropic"
H1_VARS = ("CCP_FORCE_H1", "MITM_FORCE_H1")  # truthy: HTTP/1.1
H2_VARS = ("CCP_HTTP2",)  # truthy: HTTP/2 (on a TLS upstream)
# record fields whose values are compared between arms (what the shim says it did)
RECORD_FIELDS = ("lane", "decision", "h2", "header_mode", "upstream_status", "err_type")


class Toggle(NamedTuple):
    label: str  # short name for files and headings: h1h2, header-mode, NAME
    name: str  # the environment variable
    a: str
    b: str

    def value(self, arm: str) -> str:
        return self.a if arm == "A" else self.b


PRESETS = {
    "h1h2": Toggle("h1h2", "CCP_HTTP2", "1", "0"),  # A: HTTP/2 (httpx), B: the default HTTP/1.1
    "header-mode": Toggle("header-mode", "ZAI_HEADER_MODE", "x-api-key", "authorization"),
}
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


# --- pure parts -------------------------------------------------------------------------------------

def parse_toggle(spec: str) -> Toggle:
    """`h1h2`, `header-mode` or `NAME=a,b` → Toggle; ValueError saying what is wrong."""
    spec = (spec or "").strip()
    if spec in PRESETS:
        return PRESETS[spec]
    name, eq, values = spec.partition("=")
    name = name.strip()
    if not eq:
        raise ValueError(f"toggle {spec!r}: expected {', '.join(PRESETS)} or NAME=a,b")
    if not _ENV_NAME.match(name):
        raise ValueError(f"toggle {spec!r}: {name!r} is not an environment variable name")
    parts = values.split(",")
    if len(parts) != 2:
        raise ValueError(f"toggle {spec!r}: expected exactly two values, NAME=a,b")
    a, b = (p.strip() for p in parts)
    if a == b:
        raise ValueError(f"toggle {spec!r}: the two values are the same")
    return Toggle(name, name, a, b)


def arm_order(rounds: int) -> list[tuple[int, str]]:
    """(round, arm) in run order: A B A B … (1-based rounds)."""
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    return [(r, arm) for r in range(1, rounds + 1) for arm in ARMS]


def is_interleaved(executed: Sequence[tuple[int, str]]) -> bool:
    """True when the arms strictly alternate A B A B … and every round has both."""
    return bool(executed) and len(executed) % 2 == 0 and list(executed) == arm_order(len(executed) // 2)


class Planned(NamedTuple):
    kind: str
    family: str  # haiku | sonnet
    model: str
    stream: bool
    warmup: bool = False


def probe_plan(kinds: Sequence[str], repeat: int, haiku: str = HAIKU_MODEL,
               sonnet: str = SONNET_MODEL, warmup: int = 1) -> list[Planned]:
    """The same list for every arm and round: `warmup` http non-stream requests per model (not
    counted), then per repeat and kind, haiku and sonnet, non-stream and stream (the CLI: stream)."""
    models = (("haiku", haiku), ("sonnet", sonnet))
    items = [Planned("http", fam, model, False, True) for _ in range(warmup) for fam, model in models]
    for _ in range(repeat):
        for kind in kinds:
            for fam, model in models:
                for stream in ((True,) if kind == "cli" else (False, True)):
                    items.append(Planned(kind, fam, fam if kind == "cli" else model, stream))
    return items


def _pcts(values: Iterable[float | None]) -> dict:
    vals = [float(v) for v in values if isinstance(v, (int, float))]
    return {"n": len(vals), "p50": _r(percentile(vals, 50)), "p95": _r(percentile(vals, 95))}


def _r(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def arm_stats(rows: Sequence[Mapping]) -> dict:
    """Counts, errors by type and p50/p95 of latency, TTFB and client time over measured rows."""
    rows = [r for r in rows if not r.get("warmup")]
    errors: dict[str, int] = {}
    for r in rows:
        if r.get("error_type"):
            errors[r["error_type"]] = errors.get(r["error_type"], 0) + 1
    ok = [r for r in rows if r.get("ok")]
    h2 = [r["h2"] for r in rows if isinstance(r.get("h2"), bool)]
    return {"probes": len(rows), "ok": len(ok), "errors": dict(sorted(errors.items())),
            "latency_ms": _pcts(r.get("latency_ms") for r in ok),
            "ttfb_ms": _pcts(r.get("ttfb_ms") for r in ok),
            "client_ms": _pcts(r.get("client_ms") for r in ok),
            "h2_share": _r(sum(h2) / len(h2)) if h2 else None}


def per_round_p50(rows: Sequence[Mapping], arm: str, key: str, rounds: int) -> list[float | None]:
    """The p50 of `key` over the successful measured rows of `arm`, per round (1..rounds)."""
    out = []
    for rnd in range(1, rounds + 1):
        vals = [r[key] for r in rows if r.get("arm") == arm and r.get("round") == rnd
                and r.get("ok") and not r.get("warmup") and isinstance(r.get(key), (int, float))]
        out.append(percentile(vals, 50))
    return out


def paired_ratios(a: Sequence[float | None], b: Sequence[float | None]) -> dict:
    """B/A per round (rounds where both exist and A > 0) and their spread."""
    ratios = [y / x for x, y in zip(a, b) if x is not None and y is not None and x > 0]
    if not ratios:
        return {"n": 0, "ratios": [], "median": None, "q25": None, "q75": None, "min": None,
                "max": None, "b_above_a": 0}
    return {"n": len(ratios), "ratios": [round(v, 4) for v in ratios],
            "median": _r(median(ratios), 4), "q25": _r(percentile(ratios, 25), 4),
            "q75": _r(percentile(ratios, 75), 4), "min": _r(min(ratios), 4),
            "max": _r(max(ratios), 4), "b_above_a": sum(1 for v in ratios if v > 1.0)}


def error_type(res_ok: bool, status: int | None, record: Mapping | None) -> str | None:
    """The error a probe counts as: the record's err_type, else what the client saw."""
    if record is not None and record.get("err_type"):
        return str(record["err_type"])
    if res_ok:
        return None
    if record is None:
        return "no_record" if status is None else f"no_record_status_{status}"
    return f"status_{status}" if status and not 200 <= status < 300 else "bad_answer"


def auth_style(headers: Mapping[str, str]) -> str:
    """Which credential header an upstream call carried: x-api-key, authorization, both or none."""
    key = bool(headers.get("x-api-key"))
    bearer = str(headers.get("authorization", "")).lower().startswith("bearer ")
    return {(True, False): "x-api-key", (False, True): "authorization",
            (True, True): "both"}.get((key, bearer), "none")


def _tally(values: Iterable[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return dict(sorted(out.items()))


def toggle_effect(toggle: Toggle, seen: Mapping[str, Sequence[Mapping]], tls: bool) -> GateResult | None:
    """Did the upstream see the difference the toggle should make? None when not checkable.

    `seen[arm]` lists that arm's upstream calls as {"lane", "http_version", "auth"}.
    """
    if not seen or not all(seen.get(arm) for arm in ARMS):
        return None
    if toggle.name in H1_VARS or toggle.name in H2_VARS:
        if not tls:
            return None  # plain-HTTP upstreams speak HTTP/1.1 whatever the toggle says
        h2_when = toggle.name in H2_VARS  # (the truthy value means HTTP/2 for CCP_HTTP2)
        want = {arm: "2" if truthy(toggle.value(arm)) == h2_when else "1.1" for arm in ARMS}
        got = {arm: sorted({c["http_version"] for c in seen[arm]}) for arm in ARMS}
    elif toggle.name == "ZAI_HEADER_MODE":
        want = {arm: toggle.value(arm).strip().lower() for arm in ARMS}
        got = {arm: sorted({c["auth"] for c in seen[arm] if c["lane"] == "zai"}) for arm in ARMS}
    else:
        return None
    ok = all(got[arm] == [want[arm]] for arm in ARMS)
    detail = "; ".join(f"arm {arm} ({toggle.name}={toggle.value(arm)}): upstream saw "
                       f"{', '.join(got[arm]) or 'nothing'} (expected {want[arm]})" for arm in ARMS)
    return GateResult("toggle_effect", ok, detail)


def record_differences(rows: Sequence[Mapping]) -> dict[str, dict[str, list]]:
    """Record fields whose sets of values differ between the arms: {field: {arm: values}}."""
    out = {}
    for fld in RECORD_FIELDS:
        values = {arm: sorted({json.dumps(r.get(fld)) for r in rows if r.get("arm") == arm
                               and r.get("has_record")}) for arm in ARMS}
        if values["A"] != values["B"]:
            out[fld] = {arm: [json.loads(v) for v in vals] for arm, vals in values.items()}
    return out


def _ratio_text(r: dict) -> tuple[str, str, str, str]:
    if not r["n"]:
        return "–", "–", "–", "–"
    return (f"{r['median']:.3f}", f"{r['q25']:.3f}–{r['q75']:.3f}", f"{r['min']:.3f}–{r['max']:.3f}",
            f"{r['b_above_a']}/{r['n']}")


def _counted(counts: Mapping[str, int] | None) -> str:
    return ", ".join(f"{k} ×{v}" for k, v in (counts or {}).items()) or "none"


def render_markdown(rep: Mapping) -> str:
    """The A/B page (pure)."""
    t = rep["toggle"]
    lines = [f"# A/B {t['label']}: {t['name']} A={t['a']} vs B={t['b']}", "",
             f"One interleaved run started {rep['started_at']}: {rep['rounds']} rounds of A B, a fresh "
             f"shim per arm and round, the same {rep['probes_per_arm_round']} probes each time "
             f"(kinds {', '.join(rep['kinds'])}; haiku and sonnet; non-stream and stream; ×{rep['repeat']}"
             f"; {rep['warmup']} warm-up request(s) per model not counted). Upstreams: {rep['upstreams']}. "
             "Latency and TTFB are the shim's own (usage records); client time includes the client.", "",
             "The ratios compare the two arms inside this run only, on this machine under its load at "
             "the time; they are not absolute figures for either setting.", "",
             "## Per arm", "",
             "| arm | setting | probes | ok | errors | p50 latency | p95 latency | p50 TTFB | p95 TTFB "
             "| p50 client | h2 share |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for arm in ARMS:
        s = rep["arms"][arm]["stats"]
        errors = _counted(s["errors"])
        lines.append(
            f"| {arm} | `{t['name']}={t['a'] if arm == 'A' else t['b']}` | {s['probes']} | {s['ok']} "
            f"| {errors} | {fmt(s['latency_ms']['p50'], 2)} | {fmt(s['latency_ms']['p95'], 2)} "
            f"| {fmt(s['ttfb_ms']['p50'], 2)} | {fmt(s['ttfb_ms']['p95'], 2)} "
            f"| {fmt(s['client_ms']['p50'], 2)} | {fmt(s['h2_share'], 2)} |")
    lines += ["", "(times in ms, over the successful measured probes of each arm)", "",
              "## B/A ratios, paired per round", "",
              "| metric | median | IQR | min–max | rounds with B > A | pooled p50 B/A |",
              "|---|---|---|---|---|---|"]
    for key, label in (("latency_p50", "p50 latency"), ("ttfb_p50", "p50 TTFB"),
                       ("client_p50", "p50 client time")):
        med, iqr, span, above = _ratio_text(rep["ratios"][key])
        lines.append(f"| {label} | {med} | {iqr} | {span} | {above} | "
                     f"{fmt(rep['pooled_ratios'][key], 3)} |")
    lines += ["", "## Per round", "",
              "| round | A p50 latency | B p50 latency | B/A | A p50 TTFB | B p50 TTFB | B/A |",
              "|---|---|---|---|---|---|---|"]
    for row in rep["per_round"]:
        lines.append(f"| {row['round']} | {fmt(row['A']['latency_p50'], 2)} | "
                     f"{fmt(row['B']['latency_p50'], 2)} | {fmt(row['latency_ratio'], 3)} | "
                     f"{fmt(row['A']['ttfb_p50'], 2)} | {fmt(row['B']['ttfb_p50'], 2)} | "
                     f"{fmt(row['ttfb_ratio'], 3)} |")
    lines += ["", "## What changed between the arms", ""]
    seen = rep.get("upstream_seen") or {}
    if seen:
        for arm in ARMS:
            s = seen.get(arm, {})
            lines.append(f"- arm {arm}: upstream requests by HTTP version: {_counted(s.get('http_version'))}; "
                         f"zai credential header: {_counted(s.get('zai_auth'))}")
    else:
        lines.append("- the upstreams are not the built-in mocks: what they received is not recorded")
    diffs = rep["record_differences"]
    lines.append("- record fields that differ: " + ("; ".join(
        f"`{k}` A={v['A']} B={v['B']}" for k, v in diffs.items()) if diffs else "none"))
    lines += ["", "## Checks", "", "| check | verdict | detail |", "|---|---|---|"]
    lines += [f"| {g['name']} | {'PASS' if g['ok'] else '**FAIL**'} | {g['detail']} |"
              for g in rep["gates"]]
    lines += ["", f"Run order: {' '.join(f'{a}{r}' for r, a in rep['executed'])}; logs under "
              f"`{rep['logs_dir']}`.", ""]
    return "\n".join(lines)


# --- a recording HTTP/2-capable upstream ------------------------------------------------------------

class AsgiUpstream:
    """A minimal Anthropic Messages upstream as an ASGI app (for harness.tls_mock.TlsMock, which
    offers h2): answers like the mock upstream (`Reply with exactly: X` → X, stream or JSON), any
    non-POST with 200, and records each POST's HTTP version, path, lane and headers."""

    def __init__(self) -> None:
        self.calls: list[dict] = []

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        from harness.tls_mock import (
            read_body,  # only ever served by TlsMock (dev extras)
        )
        body = await read_body(receive)
        if scope["method"] != "POST":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        path = scope["path"]
        self.calls.append({"http_version": scope.get("http_version", ""), "path": path,
                           "lane": "zai" if path.startswith(ZAI_PREFIX) else "anthropic",
                           "headers": headers})
        try:
            payload = json.loads(body or b"{}")
        except ValueError:
            payload = {}
        model = str(payload.get("model") or "mock-model")
        text = reply_text(payload, "tls")
        if payload.get("stream") is True:
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"text/event-stream")]})
            for event in sse_events(model, text, default_deltas(text), max(1, len(body) // 4)):
                await send({"type": "http.response.body", "body": event, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
            return
        data = json.dumps(message_json(model, text, max(1, len(body) // 4),
                                       default_deltas(text))).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": data})


# --- the run ----------------------------------------------------------------------------------------

@dataclass
class Upstreams:
    """Where the arms' shims send requests, and a view of what those upstreams received."""

    kind: str  # mock | tls | env
    env: dict
    ready_path: str
    mocks: tuple = ()
    tls: object | None = None
    app: AsgiUpstream | None = None

    def mark(self) -> tuple[int, ...]:
        if self.app is not None:
            return (len(self.app.calls),)
        return tuple(len(m.calls) for m in self.mocks)

    def seen_since(self, mark: tuple[int, ...]) -> list[dict]:
        """The upstream calls since `mark`, as {"lane", "http_version", "auth"}."""
        if self.app is not None:
            return [{"lane": c["lane"], "http_version": c["http_version"],
                     "auth": auth_style(c["headers"])} for c in self.app.calls[mark[0]:]]
        out = []
        for mock, start in zip(self.mocks, mark):
            lane = "zai" if mock.name == "zai" else "anthropic"
            # the aiohttp mock on cleartext speaks HTTP/1.1 only
            out += [{"lane": lane, "http_version": "1.1", "auth": auth_style(c.headers)}
                    for c in mock.calls[start:]]
        return out

    def close(self) -> None:
        for m in self.mocks:
            m.stop()
        if self.tls is not None:
            self.tls.stop()


def _start_upstreams(kind: str) -> Upstreams:
    if kind == "env":
        # the environment's upstreams and keys; the logs go to each arm's own folder
        return Upstreams("env", run_env(),
                         "/healthz")
    if kind == "tls":
        from harness.tls_mock import TlsMock  # hypercorn + trustme (the dev extras)
        app = AsgiUpstream()
        tls = TlsMock(app).start()
        env = {**lane_env(tls.base_url, tls.base_url + ZAI_PREFIX), "CCP_CA_BUNDLE": tls.ca_path}
        return Upstreams("tls", env, "/readyz", tls=tls, app=app)
    mocks = (MockUpstream("anthropic").start(), MockUpstream("zai").start())
    return Upstreams("mock", lane_env(mocks[0].base_url, mocks[1].zai_base_url), "/readyz", mocks)


def _fire(item: Planned, url: str, auth: dict, timeout: float, token: str) -> ProbeResult:
    prompt = f"Reply with exactly: {token} and nothing else."
    if item.kind == "cli":
        return probe("cli", url, item.model, prompt, timeout=timeout, auth_token=auth.get("cli_token"))
    return probe(item.kind, url, item.model, prompt, stream=item.stream, api_key=auth.get("api_key"),
                 timeout=timeout)


def _arm_round(up: Upstreams, toggle: Toggle, arm: str, rnd: int, items: list[Planned],
               logs_dir: Path, auth: dict, timeout: float) -> tuple[list[dict], dict]:
    env = {**up.env, toggle.name: toggle.value(arm)}
    folder = logs_dir / f"r{rnd:02d}-{arm}"
    mark = up.mark()
    results: list[ProbeResult] = []
    tokens: list[str] = []
    with ShimProcess(folder, env, ready_path=up.ready_path) as shim:
        pid = shim.proc.pid
        for i, item in enumerate(items):
            token = f"AB_{arm}{rnd}_{item.family.upper()}_{i}"
            tokens.append(token)
            results.append(_fire(item, shim.url, auth, timeout, token))
        reached = [i for i, r in enumerate(results) if r.status is not None]
        try:
            shim.wait_for_records(len(reached)) if reached else None
        except TimeoutError:
            pass  # counted below: probes without a record
    records, _ = read_records(folder) if usage_files(folder) else ([], 0)
    found = attach_records(results, records)
    rows = []
    for i, (item, res) in enumerate(zip(items, results)):
        rec = found.get(i)
        ok = res.ok and tokens[i] in res.text
        rows.append({
            "round": rnd, "arm": arm, "kind": item.kind, "family": item.family,
            "op": "stream" if item.stream else "nonstream", "warmup": item.warmup, "ok": ok,
            "status": res.status, "rid": res.rid, "has_record": rec is not None,
            "error_type": error_type(ok, res.status, rec),
            "latency_ms": (rec or {}).get("latency_ms"), "ttfb_ms": (rec or {}).get("ttfb_ms"),
            "client_ms": round(res.elapsed_ms, 3),
            **{f: (rec or {}).get(f) for f in RECORD_FIELDS if f != "err_type"},
        })
    info = {"round": rnd, "arm": arm, "value": toggle.value(arm), "pid": pid, "logs": str(folder),
            "records": len(records), "upstream": up.seen_since(mark)}
    return rows, info


def _gates(executed, rows, infos, toggle, up) -> list[GateResult]:
    verdicts = [GateResult("arms_interleaved", is_interleaved(executed),
                           " ".join(f"{a}{r}" for r, a in executed)
                           + f"; {len({i['pid'] for i in infos})} distinct shim processes")]
    missing = [r for r in rows if r["status"] is not None and not r["has_record"]]
    extra = sum(i["records"] for i in infos) - sum(1 for r in rows if r["has_record"])
    verdicts.append(GateResult(
        "one_record_per_probe", not missing and extra == 0,
        f"{sum(1 for r in rows if r['has_record'])} probes, each with its record"
        if not missing and extra == 0 else
        f"{len(missing)} probe(s) without a record, {extra} record(s) without a probe"))
    short = [f"{a}{r}" for r, a in executed
             if not any(x["ok"] for x in rows if x["round"] == r and x["arm"] == a and not x["warmup"])]
    verdicts.append(GateResult("arms_measured", not short,
                               "every arm of every round has successful probes" if not short
                               else f"no successful probe in {', '.join(short)}"))
    seen = {arm: [c for i in infos if i["arm"] == arm for c in i["upstream"]] for arm in ARMS}
    effect = toggle_effect(toggle, seen, up.kind == "tls") if up.kind != "env" else None
    if effect is not None:
        verdicts.append(effect)
    return verdicts


def run(args: argparse.Namespace) -> int:
    try:
        toggle = parse_toggle(args.toggle)
    except ValueError as exc:
        print(f"UsageError: --toggle: {exc}", file=sys.stderr)
        return 2
    if args.rounds < MIN_ROUNDS:
        print(f"UsageError: --rounds must be >= {MIN_ROUNDS} (ratios need a spread)", file=sys.stderr)
        return 2
    kinds = tuple(k.strip() for k in args.kinds.split(",") if k.strip())
    bad = [k for k in kinds if k not in KINDS]
    if bad or not kinds or args.repeat < 1 or args.warmup < 0:
        print(f"UsageError: --kinds from {','.join(KINDS)}, --repeat >= 1, --warmup >= 0",
              file=sys.stderr)
        return 2
    if "cli" in kinds and not find_claude():
        print("UsageError: --kinds cli: the claude CLI is not installed (make claude)", file=sys.stderr)
        return 2
    settings = load_settings()
    real = settings.allow_real_api and bool(settings.zai_api_key) and bool(
        settings.anthropic_auth_token or settings.anthropic_api_key)
    kind = args.upstream or ("env" if real else ("tls" if toggle.name in H1_VARS + H2_VARS else "mock"))
    if args.upstream == "env" and not real:
        print("UsageError: --upstream env needs ALLOW_REAL_API=1, ZAI_API_KEY and an Anthropic "
              "credential", file=sys.stderr)
        return 2
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    run_name = args.run or f"AB-{toggle.label}-{stamp}"
    results_dir = Path(args.results or settings.results_dir).resolve()
    # the arms' shim folders (logs, store, quota book), never the daily logs
    logs_dir = ((Path(args.logs) / "ab" / run_name).resolve() if args.logs
                else run_folder(results_dir, "ab", run_name))
    base = dict(os.environ) if kind == "env" else {}
    for arm in ARMS:  # a bad value stops here (ConfigError, exit 2), before anything starts
        load_settings({**base, toggle.name: toggle.value(arm)})
    up = _start_upstreams(kind)
    if kind == "env":
        auth = {"cli_token": settings.anthropic_auth_token.reveal() or None}
    else:
        keys = test_keys()
        auth = {"api_key": keys["CLIENT_API_KEY"], "cli_token": keys["CLIENT_OAUTH_TOKEN"]}
    items = probe_plan(kinds, args.repeat, args.haiku_model, args.sonnet_model, args.warmup)
    started_at = utc_timestamp()
    rows: list[dict] = []
    infos: list[dict] = []
    executed: list[tuple[int, str]] = []
    interrupted = False
    try:
        print(f"[ab] run={run_name} {toggle.name}: A={toggle.a} B={toggle.b} rounds={args.rounds} "
              f"upstreams={kind} probes/arm/round={len(items)} logs={logs_dir}", flush=True)
        for rnd, arm in arm_order(args.rounds):
            got, info = _arm_round(up, toggle, arm, rnd, items, logs_dir, auth, args.timeout)
            rows += got
            infos.append(info)
            executed.append((rnd, arm))
            s = arm_stats(got)
            print(f"[ab] round {rnd} arm {arm} ({toggle.name}={toggle.value(arm)}): "
                  f"{s['ok']}/{s['probes']} ok, p50 latency {fmt(s['latency_ms']['p50'], 2)} ms, "
                  f"p50 TTFB {fmt(s['ttfb_ms']['p50'], 2)} ms", flush=True)
    except KeyboardInterrupt:  # the arm's `with` stopped its shim; the upstreams stop below
        interrupted = True
        print(f"\n[ab] interrupted after {len(executed)} arm round(s): shims and upstreams "
              f"stopped; writing what ran", file=sys.stderr, flush=True)
    finally:
        up.close()
    rep = build_report(toggle, args, kinds, items, kind, started_at, run_name, logs_dir, executed,
                       rows, infos, up)
    if interrupted:
        rep["gates"].append({"name": "run_complete", "ok": False,
                             "detail": f"interrupted (Ctrl-C) after {len(executed)} arm round(s)"})
    md_path = results_dir / f"{run_name}.md"
    json_path = results_dir / f"{run_name}.json"
    results_dir.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(rep, indent=2) + "\n", encoding="utf-8")
    md_path.write_text(render_markdown(rep), encoding="utf-8")
    verdicts = [GateResult(**g) for g in rep["gates"]]
    append_entry(results_dir, f"ab {run_name}", {toggle.name: f"A={toggle.a} B={toggle.b}"},
                 verdicts, [md_path, json_path])
    print()
    print(format_verdicts(verdicts))
    lat = rep["ratios"]["latency_p50"]
    print(f"[ab] B/A p50 latency: median {fmt(lat['median'], 3)} "
          f"(min–max {fmt(lat['min'], 3)}–{fmt(lat['max'], 3)}, {lat['n']} rounds)")
    print(f"[ab] report: {md_path}")
    if interrupted:
        return 130
    return 0 if all(v.ok for v in verdicts) else 1


def build_report(toggle, args, kinds, items, upstreams, started_at, run_name, logs_dir, executed,
                 rows, infos, up) -> dict:
    rounds = args.rounds
    per_round, series = [], {}
    for key, col in (("latency_p50", "latency_ms"), ("ttfb_p50", "ttfb_ms"), ("client_p50", "client_ms")):
        series[key] = {arm: per_round_p50(rows, arm, col, rounds) for arm in ARMS}
    for i in range(rounds):
        entry = {"round": i + 1}
        for arm in ARMS:
            entry[arm] = {key: _r(series[key][arm][i]) for key in series}
        for key, name in (("latency_p50", "latency_ratio"), ("ttfb_p50", "ttfb_ratio")):
            a, b = entry["A"][key], entry["B"][key]
            entry[name] = _r(b / a, 4) if a and b is not None else None
        per_round.append(entry)
    stats = {arm: arm_stats([r for r in rows if r["arm"] == arm]) for arm in ARMS}
    pooled = {}
    for key, col in (("latency_p50", "latency_ms"), ("ttfb_p50", "ttfb_ms"), ("client_p50", "client_ms")):
        a, b = stats["A"][col]["p50"], stats["B"][col]["p50"]
        pooled[key] = _r(b / a, 4) if a and b is not None else None
    seen = {}
    if upstreams != "env":
        for arm in ARMS:
            calls = [c for i in infos if i["arm"] == arm for c in i["upstream"]]
            seen[arm] = {"http_version": _tally(c["http_version"] for c in calls),
                         "zai_auth": _tally(c["auth"] for c in calls if c["lane"] == "zai")}
    upstream_label = {"mock": "built-in plain-HTTP mocks", "tls": "built-in TLS mock (offers HTTP/2)",
                      "env": "the environment's (ALLOW_REAL_API=1)"}[upstreams]
    return {
        "run": run_name, "started_at": started_at, "toggle": toggle._asdict(),
        "upstreams": upstream_label, "upstream_kind": upstreams, "rounds": rounds,
        "repeat": args.repeat, "warmup": args.warmup, "kinds": list(kinds),
        "probes_per_arm_round": len(items), "logs_dir": str(logs_dir),
        "executed": [list(e) for e in executed],
        "arm_runs": [{k: v for k, v in i.items() if k != "upstream"} for i in infos],
        "arms": {arm: {"value": toggle.value(arm), "stats": stats[arm]} for arm in ARMS},
        "per_round": per_round,
        "ratios": {key: paired_ratios(series[key]["A"], series[key]["B"]) for key in series},
        "pooled_ratios": pooled, "upstream_seen": seen,
        "record_differences": record_differences([r for r in rows if not r["warmup"]]),
        "gates": [g._asdict() for g in _gates(executed, rows, infos, toggle, up)],
        "rows": rows,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="ccp ab", description=__doc__.splitlines()[0])
    p.add_argument("--toggle", required=True, help="h1h2 | header-mode | NAME=a,b")
    p.add_argument("--rounds", type=int, default=5, help=f"A B rounds (>= {MIN_ROUNDS}, default 5)")
    p.add_argument("--repeat", type=int, default=3, help="probe set repeats per arm and round (default 3)")
    p.add_argument("--warmup", type=int, default=1, help="uncounted requests per model first (default 1)")
    p.add_argument("--kinds", default=",".join(DEFAULT_KINDS),
                   help=f"probe kinds from {','.join(KINDS)} (default {','.join(DEFAULT_KINDS)})")
    p.add_argument("--upstream", choices=("mock", "tls", "env"),
                   help="mock (plain HTTP), tls (offers HTTP/2; the default for h1h2), env "
                        "(ALLOW_REAL_API=1; chosen whenever the real keys are set)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per probe (default 60)")
    p.add_argument("--run", help="run name (default AB-<toggle>-<UTC time>)")
    p.add_argument("--logs", help="folder for the arms' shim logs (the run uses <LOGS>/ab/<run>/; "
                                  "default results/runs/ab/<run>/, never the daily logs)")
    p.add_argument("--results", help="results folder (default CCP_RESULTS_DIR or results)")
    p.add_argument("--haiku-model", default=HAIKU_MODEL, help="haiku model id for curl/http probes "
                   "(default %(default)s)")
    p.add_argument("--sonnet-model", default=SONNET_MODEL, help="sonnet model id for "
                   "curl/http probes (default %(default)s)")
    args = p.parse_args(argv)
    try:
        return run(args)
    except ConfigError as exc:
        print(f"ConfigError: {exc}", file=sys.stderr)
        return 2
