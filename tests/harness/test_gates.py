"""harness.gates: each gate passes on clean records and fails, naming rids, on offenders."""
import json

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
