"""harness.gates: each gate passes on clean records and fails, naming rids, on offenders."""
import json
import zlib

import pytest

from harness.gates import (
    GateResult,
    all_ok,
    format_verdicts,
    metrics_present,
    no_haiku_on_anthropic,
    no_header_mode_on_anthropic,
    one_record_per_rid,
    run_gates,
    streams_accounted,
)

pytestmark = pytest.mark.quick

HAIKU = "claude-haiku-4-5-20251001"


def rec(rid, model="claude-sonnet-4-5", lane="anthropic", decision="to_anth", **kw):
    base = {"rid": rid, "model": model, "lane": lane, "provider": lane, "decision": decision,
            "op": "nonstream", "status": 200, "err_type": None, "reason": None, "sse": None}
    if lane == "zai":
        base["header_mode"] = "x-api-key"
    base.update(kw)
    return base


def stream(rid, complete=True, err_type=None, reason="streaming", **kw):
    kw.setdefault("sse", {"events": 3, "bytes": 10, "duration_ms": 1.0, "complete": complete})
    return rec(rid, op="stream", err_type=err_type, reason=reason, **kw)


def clean():
    return [rec("r1"), rec("r2", model=HAIKU, lane="zai", decision="to_zai"), stream("r3")]


def test_clean_records_pass_every_gate():
    results = run_gates(clean())
    assert [r.name for r in results] == ["no_haiku_on_anthropic", "no_header_mode_on_anthropic",
                                         "streams_accounted", "one_record_per_rid", "fallbacks"]
    assert all_ok(results), format_verdicts(results)


def test_haiku_on_anthropic_with_to_anth_fails():
    leaks = [rec("leak", model=HAIKU), rec("leak2", model="claude-3-5-haiku-latest")]
    r = no_haiku_on_anthropic(clean() + leaks)
    assert not r.ok
    assert "2/3" in r.detail and "leak" in r.detail and "leak2" in r.detail


@pytest.mark.parametrize("decision", ["offload_paused", "license_block", "quota_block",
                                      "manual_override", "route"])
def test_haiku_on_anthropic_allowed_by_decision(decision):
    assert no_haiku_on_anthropic([rec("x", model=HAIKU, decision=decision)]).ok


def test_haiku_bad_request_on_anthropic_is_allowed():
    assert no_haiku_on_anthropic([rec("x", model=HAIKU, err_type="bad_request", status=400)]).ok


def test_haiku_gate_ignores_non_haiku_and_null_models():
    assert no_haiku_on_anthropic([rec("a", model="claude-opus-4"), rec("b", model=None)]).ok


def test_header_mode_on_anthropic_fails():
    bad = rec("anth-hm", header_mode="authorization")
    r = no_header_mode_on_anthropic(clean() + [bad])
    assert not r.ok and "anth-hm" in r.detail and "1/3" in r.detail


def test_header_mode_null_or_absent_on_anthropic_passes():
    assert no_header_mode_on_anthropic([rec("a", header_mode=None), rec("b")]).ok


def test_streams_accounted():
    ok = [stream("done"), stream("abort", complete=False, err_type="client_abort"),
          stream("timeout", complete=False, reason="stream_timeout")]
    assert streams_accounted(ok).ok
    bad = [stream("silent", complete=False), stream("nosse", sse=None)]
    r = streams_accounted(ok + bad)
    assert not r.ok and "2/5" in r.detail and "silent" in r.detail and "nosse" in r.detail


def test_nonstream_records_are_not_streams():
    assert streams_accounted([rec("n")]).detail.startswith("0 streams")


def test_one_record_per_rid():
    assert one_record_per_rid(clean()).ok
    r = one_record_per_rid(clean() + [rec("r1"), rec(""), rec(None)])
    assert not r.ok
    assert "r1×2" in r.detail and "2 records without a rid" in r.detail


def test_metrics_present(tmp_path):
    path = tmp_path / "METRICS_summary.json"
    assert not metrics_present(path).ok
    path.write_text("{not json")
    assert not metrics_present(path).ok
    path.write_text(json.dumps({"other": 1}))
    assert not metrics_present(path).ok
    path.write_text(json.dumps({"requests": 7}))
    r = metrics_present(path)
    assert r.ok and "7 requests" in r.detail


def test_run_gates_adds_metrics_gate_when_given(tmp_path):
    results = run_gates(clean(), tmp_path / "missing.json")
    assert results[-1].name == "metrics_present" and not all_ok(results)


def test_format_verdicts():
    text = format_verdicts([GateResult("a", True, "fine"), GateResult("b", False, "broken: r9")])
    assert text.splitlines() == ["PASS a: fine", "FAIL b: broken: r9"]


def test_empty_records_pass():
    assert all_ok(run_gates([]))


def test_readyz_gate():
    from harness.gates import readyz_ok
    good = {"ok": True, "providers": {"anthropic": {"reachable": True, "reason": "ok"},
                                      "zai": {"reachable": True, "reason": "not_found"}}}
    assert readyz_ok(good).ok
    bad = {"ok": False, "providers": {"anthropic": {"reachable": False, "reason": "timeout"}}}
    result = readyz_ok(bad)
    assert not result.ok and "missing zai" in result.detail and "anthropic (timeout)" in result.detail
    assert not readyz_ok(None).ok


def test_providers_gate():
    from harness.gates import providers_resolve
    view = [{"name": "anthropic", "base_url": "https://a", "credential_set": True, "source": "built-in"},
            {"name": "zai", "base_url": "https://z", "credential_set": False, "credential_env": "ZAI_API_KEY",
             "source": "built-in"}]
    assert providers_resolve(view).ok
    result = providers_resolve(view, need_credentials=True)
    assert not result.ok and "ZAI_API_KEY" in result.detail
    assert not providers_resolve(view[:1]).ok


def test_rotated_before_run_gate():
    from harness.gates import rotated_before_run
    recs = [{"rid": "a", "ts": "2026-11-25T10:00:00.000Z"}, {"rid": "b", "ts": "2026-11-25T09:59:59.999Z"}]
    result = rotated_before_run(recs, "2026-11-25T10:00:00.000Z")
    assert not result.ok and "b" in result.detail
    assert rotated_before_run(recs[:1], "2026-11-25T10:00:00.000Z").ok


def test_trajectory_pairs_gate(tmp_path):
    from harness.gates import trajectory_pairs
    for kind, stems in (("query", ["t1", "t2"]), ("answer", ["t1"])):
        folder = tmp_path / "trajectory" / "s1" / kind
        folder.mkdir(parents=True)
        for stem in stems:
            (folder / f"{stem}.json").write_text("{}")
    result = trajectory_pairs(tmp_path)
    assert not result.ok and "s1/query/t2" in result.detail
    (tmp_path / "trajectory" / "s1" / "answer" / "t2.json").write_text("{}")
    assert trajectory_pairs(tmp_path).ok and "2 query/answer" in trajectory_pairs(tmp_path).detail
    assert trajectory_pairs(tmp_path / "none").ok


def test_no_secret_in_files_gate(tmp_path):
    from harness.gates import no_secret_in_files
    clean, dirty = tmp_path / "a.json", tmp_path / "b.json"
    clean.write_text('{"k": "[REDACTED…1234]"}')
    dirty.write_text('{"k": "sk-live-secret-1234"}')
    assert no_secret_in_files([clean], ["sk-live-secret-1234"]).ok
    result = no_secret_in_files([clean, dirty], ["sk-live-secret-1234"])
    assert not result.ok and "b.json" in result.detail


# ---- every gate of `ccp gates` / `ccp repro`: a clean run passes all; a run that violates exactly
# one property fails exactly that gate, with its verdict line -------------------------------------
import copy  # noqa: E402

from harness.gates import (  # noqa: E402
    CredentialCheck,
    HeaderCheck,
    HoldCheck,
    RequestCount,
    RouteCheck,
    StreamPair,
    ToggleCheck,
    compressed_relayed_exact,
    credentials_at_mocks,
    first_event_before_end,
    no_hop_or_own_headers,
    no_secret_in_files,
    one_record_per_request,
    providers_resolve,
    readyz_ok,
    rotated_before_run,
    routes_at_mocks,
    sse_byte_exact,
    toggles_effective,
    trajectory_pairs,
)
from harness.hygiene import check_anthropic_calls, check_zai_calls  # noqa: E402
from harness.probes import ProbeResult  # noqa: E402
from harness.repro import Planned, _probe_checks  # noqa: E402

ZK, AK, CK, SESS = "zk-zai-key-0001", "ak-anth-token-0001", "ck-client-key-0001", "sess-token-0001"
STARTED = "2026-11-25T10:00:00.000Z"
TS = "2026-11-25T10:00:01.000Z"
WIRE = b"event: ping\r\ndata: {}\r\n\r\n: ping\r\n\r\ndata: caf\xc3\xa9\r\n\r\n"
BODY = b'{"type":"message","content":[{"type":"text","text":"caf\xc3\xa9"}]}'
HOP = {"x-ccp-actor": "ccp repro", "te": "trailers", "connection": "keep-alive, x-hop"}


def gzipped(data: bytes) -> bytes:
    squeeze = zlib.compressobj(wbits=31)
    return squeeze.compress(data) + squeeze.flush()


def run_inputs(tmp_path):
    """Everything the gates look at in one clean repro run."""
    logs = tmp_path / "logs"
    files = {}
    for rel, text in (("trajectory/s1/query/t1.json", "{}"), ("trajectory/s1/answer/t1.json", "{}"),
                      ("partials/r3.partial", "data: [REDACTED]"), ("tee/r1.json", "{}")):
        path = logs / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        files[rel.split("/")[0]] = [*files.get(rel.split("/")[0], []), path]
    metrics = tmp_path / "METRICS.json"
    metrics.write_text(json.dumps({"requests": 3}))
    records = [dict(r, ts=TS) for r in clean()]
    items = [Planned("http", "claude-sonnet-4-5", False, "anthropic", "TOK1"),
             Planned("http", HAIKU, False, "zai", "TOK2")]
    results = [ProbeResult("http", i.model, False, status=200, rid=r["rid"], text=i.token)
               for i, r in zip(items, records, strict=False)]
    return {
        "records": records, "metrics": metrics, "logs": logs, "groups": files,
        "readyz": {"ok": True, "providers": {"anthropic": {"reachable": True, "reason": "ok"},
                                             "zai": {"reachable": True, "reason": "ok"}}},
        "providers": [{"name": "anthropic", "base_url": "http://a", "source": "built-in"},
                      {"name": "zai", "base_url": "http://z", "source": "built-in"}],
        "pairs": [StreamPair("http/stream", WIRE, [WIRE], 1)],
        "toggles": [ToggleCheck("OFFLOAD_PAUSED=1", {"mock": "anthropic"}, {"mock": "anthropic"}),
                    ToggleCheck("ZAI_HEADER_MODE=authorization", {"credential_header": "authorization"},
                                {"credential_header": "authorization"})],
        "counts": ([RequestCount("TOK1", 1, 1), RequestCount("TOK2", 1, 1)], [], []),
        "zai_calls": [{"x-api-key": ZK}], "zai_modes": ["x-api-key"],
        "anth_calls": [{"x-api-key": CK}, {"authorization": f"Bearer {AK}"}],
        "items": items, "results": results, "found": dict(enumerate(records[:2])),
        "routes": [RouteCheck("opus", "anthropic", "claude-opus-4-1", [("anthropic", "claude-opus-4-1")]),
                   RouteCheck("alias", "catalog", "upstream-m", [("catalog", "upstream-m")]),
                   RouteCheck("cli", "zai", None, [("zai", "claude-haiku-4-5")])],
        "creds": [CredentialCheck("none", {"authorization": f"Bearer {AK}"},
                                  [{"authorization": f"Bearer {AK}"}])],
        "heads": [HeaderCheck("hop", HOP, [{"x-api-key": ZK, "host": "127.0.0.1"}])],
        "every_call": [{"x-api-key": ZK}, {"x-api-key": CK, "connection": "keep-alive"}],
        "squeezed": [StreamPair("gzip/body", BODY, [gzipped(BODY)]),
                     StreamPair("gzip/stream", WIRE, [gzipped(WIRE)])],
        "holds": [HoldCheck("first", ["released"])],
    }


def evaluate(run):
    recs = run["records"]
    return [*run_gates(recs, run["metrics"]), rotated_before_run(recs, STARTED),
            readyz_ok(run["readyz"]), providers_resolve(run["providers"]),
            trajectory_pairs(run["logs"]),
            no_secret_in_files([run["metrics"]], [ZK, AK, CK, SESS], run["groups"]),
            sse_byte_exact(run["pairs"]), toggles_effective(run["toggles"]),
            one_record_per_request(*run["counts"]),
            check_zai_calls(run["zai_calls"], ZK, [AK, CK], run["zai_modes"], [SESS]),
            check_anthropic_calls(run["anth_calls"], ZK, [SESS], allowed=[AK, CK]),
            *_probe_checks(run["items"], run["results"], run["found"], recs),
            routes_at_mocks(run["routes"]), credentials_at_mocks(run["creds"]),
            no_hop_or_own_headers(run["heads"], run["every_call"]),
            compressed_relayed_exact(run["squeezed"]), first_event_before_end(run["holds"])]


GATES = ["no_haiku_on_anthropic", "no_header_mode_on_anthropic", "streams_accounted",
         "one_record_per_rid", "fallbacks", "metrics_present", "rotated_before_run", "readyz_ok",
         "providers_resolve", "trajectory_pairs", "no_secret_in_artifacts", "sse_byte_exact",
         "toggles_effective", "one_record_per_request", "zai_mock_hygiene",
         "anthropic_mock_hygiene", "probes_answered", "probes_routed", "routes_at_mocks",
         "credentials_at_mocks", "no_hop_or_own_headers", "compressed_relayed_exact",
         "first_event_before_end"]


def _partial_with_secret(run):
    run["groups"]["partials"][0].write_text(f"data: {ZK}")


def _unpaired_query(run):
    (run["logs"] / "trajectory" / "s1" / "query" / "t2.json").write_text("{}")


# gate -> (what is violated, the detail the FAIL line must carry)
VIOLATIONS = {
    "no_haiku_on_anthropic": (lambda r: r["records"].append(
        rec("hk", model=HAIKU, ts=TS)), "1/2 haiku records"),
    "no_header_mode_on_anthropic": (lambda r: r["records"].append(
        rec("hm", header_mode="x-api-key", ts=TS)), "carry header_mode: hm"),
    "streams_accounted": (lambda r: r["records"].append(
        stream("cut", complete=False, ts=TS)), "incomplete without an err_type or reason: cut"),
    "one_record_per_rid": (lambda r: r["records"].append(dict(r["records"][2])), "r3×2"),
    "metrics_present": (lambda r: r["metrics"].unlink(), "does not exist"),
    "rotated_before_run": (lambda r: r["records"].append(
        rec("old", ts="2026-11-25T09:00:00.000Z")), "older than the run start"),
    "readyz_ok": (lambda r: r["readyz"]["providers"]["zai"].update(
        reachable=False, reason="timeout"), "unreachable zai (timeout)"),
    "providers_resolve": (lambda r: r["providers"].pop(), "zai missing"),
    "trajectory_pairs": (_unpaired_query, "s1/query/t2"),
    "no_secret_in_artifacts": (_partial_with_secret, "r3.partial"),
    "sse_byte_exact": (lambda r: r["pairs"].__setitem__(0, r["pairs"][0]._replace(
        received=WIRE.replace(b"\r\n", b"\n"))), "first difference at byte 11"),
    "toggles_effective": (lambda r: r["toggles"][0].seen.update(mock="zai"),
                          "OFFLOAD_PAUSED=1: mock expected 'anthropic', seen 'zai'"),
    "one_record_per_request": (lambda r: r["counts"][0].__setitem__(
        1, RequestCount("TOK2", 1, 2)), "TOK2: 1 upstream call(s), 2 record(s)"),
    "zai_mock_hygiene": (lambda r: r["zai_calls"][0].update(authorization=f"Bearer {AK}"),
                         "anthropic credential"),
    "anthropic_mock_hygiene": (lambda r: r["anth_calls"].append(
        {"authorization": f"Bearer {ZK}"}), "call 2: carries a Z.AI key"),
    "probes_answered": (lambda r: setattr(r["results"][1], "text", "TOKX"),
                        "answered 'TOKX', expected 'TOK2'"),
    "probes_routed": (lambda r: r["found"].__setitem__(1, r["records"][0]),
                      "lane anthropic, expected zai"),
    "routes_at_mocks": (lambda r: r["routes"][1].seen.__setitem__(0, ("catalog", "ccp-alias")),
                        "alias: expected catalog/upstream-m, seen catalog/ccp-alias"),
    "credentials_at_mocks": (lambda r: r["creds"][0].seen.__setitem__(0, {"authorization": AK}),
                             "none: expected ['authorization'] with the lane's own value, seen "
                             "['authorization'] (other values)"),
    "no_hop_or_own_headers": (lambda r: r["heads"][0].seen[0].update(te="trailers"),
                              "hop: forwarded te"),
    "compressed_relayed_exact": (lambda r: r["squeezed"].__setitem__(0, r["squeezed"][0]._replace(
        received=BODY[::-1])), "gzip/body: client got 61 bytes, the mock's decode to 61, "
                               "first difference at byte 0"),
    "first_event_before_end": (lambda r: r["holds"].__setitem__(0, HoldCheck("first", ["expired"])),
                               "first: hold expired"),
}


def _lines(results):
    return {r.name: line for r, line in zip(results, format_verdicts(results).splitlines(),
                                            strict=True)}


def test_a_clean_run_passes_every_gate(tmp_path):
    results = evaluate(run_inputs(tmp_path))
    assert [r.name for r in results] == GATES
    for name, line in _lines(results).items():
        assert line.startswith(f"PASS {name}: "), line


def test_every_gate_but_the_informational_one_has_a_seeded_violation():
    assert set(VIOLATIONS) == set(GATES) - {"fallbacks"}


@pytest.mark.parametrize("gate", sorted(VIOLATIONS))
def test_a_seeded_violation_fails_its_gate_and_only_it(tmp_path, gate):
    run = run_inputs(tmp_path)
    violate, detail = VIOLATIONS[gate]
    violate(run)
    lines = _lines(evaluate(copy.copy(run)))
    assert lines[gate].startswith(f"FAIL {gate}: ") and detail in lines[gate], lines[gate]
    others = {n: line for n, line in lines.items() if n != gate and not line.startswith("PASS")}
    assert not others, others


def test_fallbacks_is_a_line_never_a_failure():
    line = format_verdicts(run_gates(clean() + [rec("fb", decision="fallback", reason="fallback:5xx")]))
    assert "PASS fallbacks: 1 request(s) fell back (fallback:5xx: 1): fb" in line.splitlines()


def test_no_secret_scan_of_nothing_says_so_and_a_missing_kind_fails(tmp_path):
    assert format_verdicts([no_secret_in_files([], ["secret-123456"])]) == \
        "PASS no_secret_in_artifacts: 0 files checked: nothing to scan"
    present = tmp_path / "p.partial"
    present.write_text("fine")
    result = no_secret_in_files([], ["secret-123456"], {"partials": [present], "tee": []})
    assert format_verdicts([result]).startswith(
        "FAIL no_secret_in_artifacts: nothing to scan: the run wrote no tee file")


def test_sse_byte_exact_fails_on_plain_streams_and_on_a_second_send():
    plain = b"event: ping\ndata: {}\n\n"
    line = format_verdicts([sse_byte_exact([StreamPair("s", plain, [plain])])])
    assert line.startswith("FAIL sse_byte_exact: 1 stream(s) identical, but the mock's streams "
                           "carried no CR LF, no comment lines, no split UTF-8")
    assert sse_byte_exact([StreamPair("s", plain, [plain])], require_wire=False).ok
    twice = sse_byte_exact([StreamPair("s", WIRE, [WIRE, WIRE], 1)])
    assert not twice.ok and "the mock sent it 2 time(s)" in twice.detail
    assert not sse_byte_exact([]).ok and sse_byte_exact([], require_wire=False).ok


def test_toggles_and_requests_name_what_is_unclaimed():
    assert "not applicable here: X" in toggles_effective([], ["X"]).detail
    result = one_record_per_request([], [rec("orphan")], ["zai POST /api/anthropic/v1/messages"])
    assert not result.ok and "1 record(s) of no probe: orphan" in result.detail
    assert "1 upstream call(s) of no probe: zai POST" in result.detail


def test_a_probe_that_reached_no_mock_fails_the_route_credential_and_header_gates():
    assert "opus: reached no mock" in routes_at_mocks([RouteCheck("opus", "anthropic", None, [])]).detail
    assert not credentials_at_mocks([CredentialCheck("c", {"x-api-key": ZK}, [])]).ok
    assert "x: reached no mock" in no_hop_or_own_headers([HeaderCheck("x", HOP, [])], []).detail
    wrong_mock = routes_at_mocks([RouteCheck("opus", "anthropic", None, [("zai", "claude-opus-4-1")])])
    assert "expected anthropic/*, seen zai/claude-opus-4-1" in wrong_mock.detail


def test_the_own_headers_scan_covers_every_call_and_wants_something_sent():
    leaked = no_hop_or_own_headers([], [{"x-api-key": ZK, "X-Ccp-Admin-Token": "t"}])
    assert not leaked.ok and "the shim's own header(s) upstream: X-Ccp-Admin-Token" in leaked.detail
    nothing = no_hop_or_own_headers([], [{"x-api-key": ZK}])
    assert not nothing.ok and "nothing proven" in nothing.detail
    assert no_hop_or_own_headers([], [{"x-api-key": ZK}], required=False).ok


def test_the_compressed_and_held_gates_want_their_probes_and_real_compression():
    assert not compressed_relayed_exact([]).ok and compressed_relayed_exact([], required=False).ok
    plain = compressed_relayed_exact([StreamPair("p", BODY, [BODY])])
    assert not plain.ok and "p: the mock's bytes are not compressed" in plain.detail
    twice = compressed_relayed_exact([StreamPair("t", BODY, [gzipped(BODY)] * 2)])
    assert not twice.ok and "t: the mock sent it 2 time(s)" in twice.detail
    assert not first_event_before_end([]).ok and first_event_before_end([], required=False).ok
    never = first_event_before_end([HoldCheck("h", [])])
    assert not never.ok and "h: hold never reached" in never.detail


def test_hygiene_finds_a_session_token_in_any_header():
    assert not check_zai_calls([{"x-api-key": ZK, "x-forwarded-auth": SESS}], ZK, [AK],
                               session_tokens=[SESS]).ok
    assert not check_anthropic_calls([{"x-api-key": CK, "x-extra": f"Bearer {SESS}"}], ZK, [SESS]).ok
    result = check_zai_calls([{"x-api-key": ZK}, {"authorization": f"Bearer {ZK}"}], ZK, [AK],
                             ["x-api-key", "authorization"])
    assert result.ok and "x-api-key" in result.detail and "authorization" in result.detail
