"""Gates: pure pass/fail checks over usage records and artifacts.

Each gate takes plain record dicts (as `reports.usage_io.read_records` returns them) and gives one
`GateResult(name, ok, detail)`; the detail says what was checked and names the first offenders by
`rid`, so a failing verdict can be grepped straight back to its log line. Only `metrics_present`
looks at a file.
"""
from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import NamedTuple

from proxy.core.routing import LANE_ANTHROPIC, is_haiku

# Decisions that legitimately keep a Haiku request on the anthropic lane (DESIGN routing table).
HAIKU_ON_ANTHROPIC_OK = frozenset(
    {"offload_paused", "license_block", "quota_block", "manual_override", "route", "fallback"})
SHOW_RIDS = 5  # how many offending rids a detail names


class GateResult(NamedTuple):
    name: str
    ok: bool
    detail: str


def _rids(records: Iterable[dict]) -> str:
    rids = [str(r.get("rid")) for r in records]
    more = f" (+{len(rids) - SHOW_RIDS} more)" if len(rids) > SHOW_RIDS else ""
    return ", ".join(rids[:SHOW_RIDS]) + more


def _verdict(name: str, bad: list[dict], checked: int, what: str, problem: str) -> GateResult:
    if bad:
        return GateResult(name, False, f"{len(bad)}/{checked} {what} {problem}: {_rids(bad)}")
    return GateResult(name, True, f"{checked} {what} checked, none {problem}")


def no_haiku_on_anthropic(records: list[dict]) -> GateResult:
    """Haiku on the anthropic lane fails unless a routing rule or a bad request explains it."""
    haiku = [r for r in records if is_haiku(r.get("model"))]
    bad = [r for r in haiku
           if r.get("lane") == LANE_ANTHROPIC
           and r.get("decision") not in HAIKU_ON_ANTHROPIC_OK
           and r.get("err_type") != "bad_request"]
    return _verdict("no_haiku_on_anthropic", bad, len(haiku), "haiku records",
                    "on the anthropic lane without an allowed decision")


def no_header_mode_on_anthropic(records: list[dict]) -> GateResult:
    """header_mode belongs to the zai lane only; on an anthropic record it betrays a Z.AI header."""
    anth = [r for r in records if r.get("lane") == LANE_ANTHROPIC]
    bad = [r for r in anth if r.get("header_mode") is not None]
    return _verdict("no_header_mode_on_anthropic", bad, len(anth), "anthropic records",
                    "carry header_mode")


def _stream_accounted(record: dict) -> bool:
    sse = record.get("sse")
    if isinstance(sse, dict) and sse.get("complete") is True:
        return True
    if record.get("err_type") is not None:
        return True
    reason = record.get("reason")
    return reason is not None and reason != "streaming"


def streams_accounted(records: list[dict]) -> GateResult:
    """Every stream completed or says why not (an err_type, or a reason other than streaming)."""
    streams = [r for r in records if r.get("op") == "stream"]
    bad = [r for r in streams if not _stream_accounted(r)]
    return _verdict("streams_accounted", bad, len(streams), "streams",
                    "incomplete without an err_type or reason")


def one_record_per_rid(records: list[dict]) -> GateResult:
    """Each request id is non-empty and appears on exactly one record."""
    name = "one_record_per_rid"
    empty = [r for r in records if not isinstance(r.get("rid"), str) or not r.get("rid")]
    seen: dict[str, int] = {}
    for r in records:
        rid = r.get("rid")
        if isinstance(rid, str) and rid:
            seen[rid] = seen.get(rid, 0) + 1
    dups = [rid for rid, n in seen.items() if n > 1]
    if not empty and not dups:
        return GateResult(name, True, f"{len(records)} records, {len(seen)} unique rids")
    parts = []
    if empty:
        parts.append(f"{len(empty)} records without a rid")
    if dups:
        shown = ", ".join(f"{rid}×{seen[rid]}" for rid in dups[:SHOW_RIDS])
        more = f" (+{len(dups) - SHOW_RIDS} more)" if len(dups) > SHOW_RIDS else ""
        parts.append(f"{len(dups)} duplicated rids: {shown}{more}")
    return GateResult(name, False, "; ".join(parts))


def metrics_present(path: str | Path) -> GateResult:
    """The METRICS file exists and is a JSON object with a `requests` count."""
    name = "metrics_present"
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return GateResult(name, False, f"{path} does not exist")
    except (OSError, ValueError) as exc:
        return GateResult(name, False, f"{path} is not readable JSON: {exc}")
    if not isinstance(data, dict) or "requests" not in data:
        return GateResult(name, False, f"{path} has no 'requests' key")
    return GateResult(name, True, f"{path}: {data['requests']} requests")


RECORD_GATES: tuple[Callable[[list[dict]], GateResult], ...] = (
    no_haiku_on_anthropic, no_header_mode_on_anthropic, streams_accounted, one_record_per_rid)


def readyz_ok(report: dict | None, required: Iterable[str] = ("anthropic", "zai")) -> GateResult:
    """`/readyz` answered 200 with every required provider reachable (others are listed too)."""
    if not isinstance(report, dict):
        return GateResult("readyz_ok", False, "no /readyz report")
    providers = report.get("providers") or {}
    missing = [p for p in required if p not in providers]
    down = [f"{name} ({p.get('reason')})" for name, p in providers.items() if not p.get("reachable")]
    ok = bool(report.get("ok")) and not missing and not down
    listed = ", ".join(f"{n}={p.get('reason')}" for n, p in providers.items())
    if ok:
        return GateResult("readyz_ok", True, f"providers: {listed}")
    problems = ([f"missing {', '.join(missing)}"] if missing else []) + \
        ([f"unreachable {', '.join(down)}"] if down else [])
    return GateResult("readyz_ok", False, "; ".join(problems) or "readyz not ok")


def providers_resolve(providers: list[dict], required: Iterable[str] = ("anthropic", "zai"),
                      need_credentials: bool = False) -> GateResult:
    """`ccp providers` lists every required lane with a base URL (and a credential when asked)."""
    by_name = {p.get("name"): p for p in providers}
    problems = []
    for name in required:
        p = by_name.get(name)
        if p is None:
            problems.append(f"{name} missing")
        elif not str(p.get("base_url", "")).startswith(("http://", "https://")):
            problems.append(f"{name} has no base_url")
        elif need_credentials and not p.get("credential_set"):
            problems.append(f"{name} has no credential ({p.get('credential_env')})")
    if problems:
        return GateResult("providers_resolve", False, "; ".join(problems))
    return GateResult("providers_resolve", True,
                      ", ".join(f"{p['name']}={p['base_url']} ({p.get('source')})" for p in providers))


def rotated_before_run(records: list[dict], run_started_ts: str) -> GateResult:
    """The log holds only this run: no record older than the run's start (ISO-8601 UTC strings)."""
    older = [r for r in records if str(r.get("ts") or "") < run_started_ts]
    if older:
        return GateResult("rotated_before_run", False,
                          f"{len(older)} record(s) older than the run start {run_started_ts}: "
                          f"{_rids(older)}")
    return GateResult("rotated_before_run", True,
                      f"{len(records)} record(s), all from this run (since {run_started_ts})")


def trajectory_pairs(logs_dir: str | Path) -> GateResult:
    """Every `trajectory/<session>/query/<ts>.json` has its `answer/<ts>.json`, and the reverse."""
    root = Path(logs_dir) / "trajectory"
    sessions = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    unpaired: list[str] = []
    pairs = 0
    for folder in sessions:
        queries = {p.stem for p in (folder / "query").glob("*.json")}
        answers = {p.stem for p in (folder / "answer").glob("*.json")}
        pairs += len(queries & answers)
        unpaired += [f"{folder.name}/query/{ts}" for ts in sorted(queries - answers)]
        unpaired += [f"{folder.name}/answer/{ts}" for ts in sorted(answers - queries)]
    if unpaired:
        return GateResult("trajectory_pairs", False,
                          f"{len(unpaired)} file(s) without their pair: {', '.join(unpaired[:SHOW_RIDS])}")
    return GateResult("trajectory_pairs", True,
                      f"{pairs} query/answer pair(s) in {len(sessions)} session(s), none unpaired")


def no_secret_in_files(paths: Iterable[str | Path], secrets: Iterable[str],
                       required: Mapping[str, Iterable[str | Path]] | None = None) -> GateResult:
    """No secret value appears in any of the given files (trajectories, logs, reports, bundles).

    `required` names groups of files the run must have written (partials, trajectories, tee
    samples, …): they are scanned too, and a group with no file fails the gate, since a scan of
    nothing proves nothing. Without groups, a scan of zero files passes but says so."""
    secrets = [s for s in secrets if s and len(s) >= 8]
    groups = {name: [Path(p) for p in files if Path(p).is_file()]
              for name, files in (required or {}).items()}
    leaks: list[str] = []
    checked = 0
    seen: set[Path] = set()
    for path in [Path(p) for p in paths] + [p for files in groups.values() for p in files]:
        if path in seen or not path.is_file():
            continue
        seen.add(path)
        checked += 1
        data = path.read_bytes()
        if any(s.encode() in data for s in secrets):
            leaks.append(str(path))
    counts = ", ".join(f"{len(files)} {name}" for name, files in groups.items())
    empty = [name for name, files in groups.items() if not files]
    scope = f" ({counts})" if counts else ""
    if leaks:
        return GateResult("no_secret_in_artifacts", False,
                          f"{len(leaks)}/{checked} file(s){scope} carry a secret: "
                          f"{', '.join(leaks[:SHOW_RIDS])}")
    if empty:
        return GateResult("no_secret_in_artifacts", False,
                          f"nothing to scan: the run wrote no {' and no '.join(empty)} file "
                          f"({checked} other file(s) checked, no secret found)")
    if not checked:
        return GateResult("no_secret_in_artifacts", True, "0 files checked: nothing to scan")
    return GateResult("no_secret_in_artifacts", True,
                      f"{checked} file(s) checked{scope}, no secret found")


class StreamPair(NamedTuple):
    """One stream as the client received it and as the upstream mock sent it."""

    label: str
    received: bytes
    sent: list[bytes]  # every send of the mock for this request (exactly one is expected)
    utf8_splits: int = 0  # the mock's writes that ended inside a UTF-8 sequence


def sse_byte_exact(pairs: list[StreamPair], require_wire: bool = True) -> GateResult:
    """Each passthrough stream reached the client byte for byte as its upstream sent it. With
    `require_wire`, the streams compared must between them have carried CR LF line ends, an SSE
    comment line and a UTF-8 character split across two writes: a check on plain streams is not
    one of byte-exactness."""
    name = "sse_byte_exact"
    if not pairs:
        return GateResult(name, not require_wire, "no stream compared")
    bad = []
    for p in pairs:
        if len(p.sent) != 1:
            bad.append(f"{p.label}: the mock sent it {len(p.sent)} time(s)")
        elif p.sent[0] != p.received:
            at = next((i for i, (a, b) in enumerate(zip(p.sent[0], p.received, strict=False)) if a != b),
                      min(len(p.sent[0]), len(p.received)))
            bad.append(f"{p.label}: client got {len(p.received)} bytes, mock sent "
                       f"{len(p.sent[0])}, first difference at byte {at}")
    sent = [p.sent[0] for p in pairs if len(p.sent) == 1]
    wire = {"CR LF": any(b"\r\n" in s for s in sent),
            "comment lines": any(s.startswith(b":") or b"\n:" in s for s in sent),
            "split UTF-8": any(p.utf8_splits for p in pairs)}
    missing = [k for k, v in wire.items() if not v]
    total = sum(len(p.received) for p in pairs)
    if bad:
        return GateResult(name, False, f"{len(bad)}/{len(pairs)} stream(s) not relayed byte for "
                                       f"byte: {'; '.join(bad[:3])}")
    if require_wire and missing:
        return GateResult(name, False, f"{len(pairs)} stream(s) identical, but the mock's streams "
                                       f"carried no {', no '.join(missing)}: nothing was proven")
    carried = ", ".join(k for k, v in wire.items() if v) or "plain LF only"
    return GateResult(name, True, f"{len(pairs)} stream(s), {total} bytes relayed identically "
                                  f"({carried})")


class ToggleCheck(NamedTuple):
    """What a toggle must change at the upstream, and what the mocks saw with it set."""

    toggle: str  # e.g. "OFFLOAD_PAUSED=1"
    expect: dict  # e.g. {"mock": "anthropic", "model": "…"}
    seen: dict  # the same keys, as observed at the mocks and in the files written


def toggles_effective(checks: list[ToggleCheck], skipped: Iterable[str] = ()) -> GateResult:
    """Every toggle had its effect where it matters: at the upstream mock (which mock got the turn,
    with which credential header and model, over which HTTP version) or in the files it writes."""
    name = "toggles_effective"
    skipped = list(skipped)
    bad = []
    for c in checks:
        wrong = [f"{k} expected {v!r}, seen {c.seen.get(k)!r}" for k, v in c.expect.items()
                 if c.seen.get(k) != v]
        if wrong:
            bad.append(f"{c.toggle}: {', '.join(wrong)}")
    note = f"; not applicable here: {', '.join(skipped)}" if skipped else ""
    if bad:
        return GateResult(name, False, f"{len(bad)}/{len(checks)} toggle(s) without their effect: "
                                       f"{'; '.join(bad[:3])}{note}")
    if not checks:
        return GateResult(name, True, f"no toggle probed{note}")
    return GateResult(name, True, f"{len(checks)} toggle(s) had their effect at the mocks: "
                                  f"{', '.join(c.toggle for c in checks)}{note}")


class RequestCount(NamedTuple):
    """One request a probe sent: how many calls the mocks saw for it, how many records it has."""

    label: str
    calls: int
    records: int


def one_record_per_request(requests: list[RequestCount], unclaimed_records: list[dict],
                           unclaimed_calls: list[str]) -> GateResult:
    """Every request a probe sent reached the mocks once and has exactly one usage record; no
    record and no upstream call belongs to no probe (a second record of a stream under another rid,
    a retry the record does not show)."""
    name = "one_record_per_request"
    bad = [f"{r.label}: {r.calls} upstream call(s), {r.records} record(s)" for r in requests
           if r.calls != 1 or r.records != 1]
    if unclaimed_records:
        bad.append(f"{len(unclaimed_records)} record(s) of no probe: {_rids(unclaimed_records)}")
    if unclaimed_calls:
        bad.append(f"{len(unclaimed_calls)} upstream call(s) of no probe: "
                   f"{', '.join(unclaimed_calls[:SHOW_RIDS])}")
    if bad:
        return GateResult(name, False, "; ".join(bad[:4]))
    return GateResult(name, True, f"{len(requests)} request(s): one upstream call and one record "
                                  f"each, nothing unclaimed")


class RouteCheck(NamedTuple):
    """Where one probe's request arrived: per call the mocks received for it, which mock and the
    model its body asked for."""

    label: str
    mock: str  # the mock it must reach
    model: str | None  # the model that mock must be asked for (None: not checked)
    seen: list[tuple[str, str | None]]


def routes_at_mocks(checks: list[RouteCheck]) -> GateResult:
    """Every probe's request reached the mock of its lane (a runtime control change, a catalog
    route, opus, …), asking for the model it must (a route's own model, not the client's)."""
    name = "routes_at_mocks"
    bad = []
    for c in checks:
        if not c.seen:
            bad.append(f"{c.label}: reached no mock")
        wrong = [f"{mock}/{model}" for mock, model in c.seen
                 if mock != c.mock or (c.model is not None and model != c.model)]
        if wrong:
            bad.append(f"{c.label}: expected {c.mock}/{c.model or '*'}, seen {', '.join(wrong)}")
    if bad:
        return GateResult(name, False, f"{len(bad)}/{len(checks)} probe(s) not where they belong: "
                                       f"{'; '.join(bad[:3])}")
    return GateResult(name, True, f"{len(checks)} probe(s), each at the mock of its lane with the "
                                  f"model it must ask for")


class CredentialCheck(NamedTuple):
    """The credential headers a probe's request must carry upstream, and what the mocks saw."""

    label: str
    expect: dict[str, str]  # e.g. {"authorization": "Bearer <the shim's token>"}, exactly
    seen: list[dict[str, str]]  # the credential headers of each call received for it


def credentials_at_mocks(checks: list[CredentialCheck], skipped: Iterable[str] = ()) -> GateResult:
    """A probe with no credential, or with a foreign one (a Z.AI or catalog key), reached Anthropic
    with the shim's own token as `Bearer`; a catalog provider got its own key only."""
    name = "credentials_at_mocks"
    note = f"; not applicable here: {', '.join(skipped)}" if skipped else ""
    bad = []
    for c in checks:
        if not c.seen:
            bad.append(f"{c.label}: reached no mock")
        for seen in c.seen:
            if seen != c.expect:
                bad.append(f"{c.label}: expected {sorted(c.expect)} with the lane's own value, "
                           f"seen {sorted(seen)}{'' if set(seen) != set(c.expect) else ' (other values)'}")
    if bad:
        return GateResult(name, False, f"{len(bad)} credential(s) not as the lane wants: "
                                       f"{'; '.join(bad[:3])}{note}")
    if not checks:
        return GateResult(name, True, f"no probe's credential to check{note}")
    return GateResult(name, True, f"{len(checks)} probe(s) carried exactly their lane's credential"
                                  f"{note}")


class HeaderCheck(NamedTuple):
    """Headers a probe sent that must never go upstream (hop-by-hop, the shim's own x-ccp-*), and
    the headers of each call the mocks received for it."""

    label: str
    sent: dict[str, str]
    seen: list[dict[str, str]]


OWN_HEADER_PREFIX = "x-ccp-"


def no_hop_or_own_headers(checks: list[HeaderCheck], every_call: list[dict[str, str]],
                          required: bool = True) -> GateResult:
    """No hop-by-hop header a client sent (nor one its `connection` names) and no `x-ccp-*` header
    reached any mock. With `required`, some probe must have sent them: a scan of calls that never
    carried one proves nothing."""
    name = "no_hop_or_own_headers"
    bad = []
    for c in checks:
        if not c.seen:
            bad.append(f"{c.label}: reached no mock")
        for seen in c.seen:
            came = sorted(k for k, v in c.sent.items() if seen.get(k.lower()) == v)
            if came:
                bad.append(f"{c.label}: forwarded {', '.join(came)}")
    own = sorted({k for h in every_call for k in h if k.lower().startswith(OWN_HEADER_PREFIX)})
    if own:
        bad.append(f"the shim's own header(s) upstream: {', '.join(own)}")
    if bad:
        return GateResult(name, False, "; ".join(bad[:3]))
    sent = sorted({k for c in checks for k in c.sent})
    if required and not sent:
        return GateResult(name, False, f"{len(every_call)} call(s) without x-ccp-* headers, but no "
                                       f"probe sent a hop-by-hop or x-ccp-* header: nothing proven")
    if not sent:
        return GateResult(name, True, f"{len(every_call)} call(s), no x-ccp-* header; no probe sent "
                                      f"a hop-by-hop or x-ccp-* header")
    return GateResult(name, True, f"{len(every_call)} call(s), no x-ccp-* header; "
                                  f"{', '.join(sent)} never forwarded")


def compressed_relayed_exact(pairs: list[StreamPair], required: bool = True) -> GateResult:
    """An answer the upstream compressed although asked for identity reached the client decoded,
    byte for byte what the compressed bytes hold (a body, and a stream, in order)."""
    name = "compressed_relayed_exact"
    if not pairs:
        return GateResult(name, not required, "no compressed answer compared")
    bad = []
    for p in pairs:
        if len(p.sent) != 1:
            bad.append(f"{p.label}: the mock sent it {len(p.sent)} time(s)")
            continue
        try:
            plain = zlib.decompressobj(wbits=47).decompress(p.sent[0])
        except zlib.error as exc:
            bad.append(f"{p.label}: the mock's bytes are not compressed ({exc})")
            continue
        if plain == p.sent[0]:
            bad.append(f"{p.label}: the mock's answer was not compressed")
        elif plain != p.received:
            at = next((i for i, (a, b) in enumerate(zip(plain, p.received, strict=False)) if a != b),
                      min(len(plain), len(p.received)))
            bad.append(f"{p.label}: client got {len(p.received)} bytes, the mock's decode to "
                       f"{len(plain)}, first difference at byte {at}")
    if bad:
        return GateResult(name, False, f"{len(bad)}/{len(pairs)} compressed answer(s) not relayed "
                                       f"exactly: {'; '.join(bad[:3])}")
    return GateResult(name, True, f"{len(pairs)} compressed answer(s), "
                                  f"{sum(len(p.received) for p in pairs)} decoded bytes identical")


class HoldCheck(NamedTuple):
    """A stream whose mock held the rest after its first event(s) until the client had read them:
    how each hold ended ("released": by the client, "expired": the client never saw them)."""

    label: str
    outcomes: list[str]


def first_event_before_end(checks: list[HoldCheck], required: bool = True) -> GateResult:
    """A stream is relayed as it arrives: its first event reached the client while the upstream
    still held the rest (the client's read released it; no clock decides)."""
    name = "first_event_before_end"
    if not checks:
        return GateResult(name, not required, "no held stream probed")
    bad = [f"{c.label}: hold {'/'.join(c.outcomes) or 'never reached'}" for c in checks
           if c.outcomes != ["released"]]
    if bad:
        return GateResult(name, False, f"{len(bad)}/{len(checks)} stream(s) whose first event did "
                                       f"not reach the client before the rest was sent: "
                                       f"{'; '.join(bad[:3])}")
    return GateResult(name, True, f"{len(checks)} stream(s): the first event reached the client "
                                  f"while the upstream held the rest")


def fallbacks_reported(records: list[dict]) -> GateResult:
    """Not a failure, a separate line: how many requests fell back to another lane, and why."""
    fell = [r for r in records if r.get("decision") == "fallback"]
    if not fell:
        return GateResult("fallbacks", True, "no request fell back to another lane")
    reasons: dict[str, int] = {}
    for r in fell:
        reasons[str(r.get("reason"))] = reasons.get(str(r.get("reason")), 0) + 1
    detail = ", ".join(f"{k}: {v}" for k, v in sorted(reasons.items()))
    return GateResult("fallbacks", True, f"{len(fell)} request(s) fell back ({detail}): {_rids(fell)}")


def run_gates(records: list[dict], metrics_path: str | Path | None = None) -> list[GateResult]:
    """All record gates, plus `metrics_present` when a METRICS path is given."""
    results = [gate(records) for gate in RECORD_GATES]
    results.append(fallbacks_reported(records))
    if metrics_path is not None:
        results.append(metrics_present(metrics_path))
    return results


def format_verdicts(results: Iterable[GateResult]) -> str:
    """One line per gate: `PASS name: detail` or `FAIL name: detail`."""
    return "\n".join(f"{'PASS' if r.ok else 'FAIL'} {r.name}: {r.detail}" for r in results)


def all_ok(results: Iterable[GateResult]) -> bool:
    return all(r.ok for r in results)
