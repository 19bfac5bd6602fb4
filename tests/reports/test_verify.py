"""reports.verify: `ccp verify-routing` and `ccp gates` output and exit codes."""
import json

import pytest

from reports.verify import gates_main, main

pytestmark = pytest.mark.quick

HAIKU = "claude-haiku-4-5-20251001"


def rec(rid, model="claude-sonnet-4-5", lane="anthropic", decision="to_anth", status=200, **kw):
    base = {"rid": rid, "model": model, "lane": lane, "provider": lane, "decision": decision,
            "op": "nonstream", "status": status, "err_type": None, "reason": None, "sse": None}
    if lane == "zai":
        base["header_mode"] = "x-api-key"
    base.update(kw)
    return base


def haiku(rid, **kw):
    return rec(rid, model=HAIKU, lane="zai", decision="to_zai", **kw)


def logs_with(tmp_path, records):
    logs = tmp_path / "logs"
    logs.mkdir(exist_ok=True)
    (logs / "usage.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return logs


GOOD = [haiku("z1"), haiku("z2"), haiku("z3", status=500, err_type="upstream_5xx"),
        rec("a1"), rec("a2"), rec("a3")]


def test_verify_routing_ok(tmp_path, capsys):
    logs = logs_with(tmp_path, GOOD)
    assert main([], default_logs_dir=str(logs)) == 0
    out = capsys.readouterr().out
    assert "zai share: 3/6 = 50.0%" in out
    assert "completions by lane: anthropic 3, zai 2, unknown 0" in out
    assert "PASS no_haiku_on_anthropic" in out and "FAIL" not in out


def test_verify_routing_fails_on_haiku_leak(tmp_path, capsys):
    logs = logs_with(tmp_path, GOOD + [rec("leak", model=HAIKU)])
    assert main([str(logs / "usage.jsonl")], default_logs_dir="unused") == 1
    out = capsys.readouterr().out
    assert "FAIL no_haiku_on_anthropic" in out and "leak" in out
    assert "zai share: 3/7 = 42.9%" in out


def test_verify_routing_missing_log_is_usage_error(tmp_path, capsys):
    assert main([str(tmp_path / "nope.jsonl")], default_logs_dir="unused") == 2
    assert capsys.readouterr().err.startswith("UsageError: ")
    assert main([], default_logs_dir=str(tmp_path / "no-logs-dir")) == 2


def test_gates_main_with_metrics(tmp_path, capsys):
    logs = logs_with(tmp_path, GOOD)
    results = tmp_path / "results"
    results.mkdir()
    (results / "METRICS.json").write_text(json.dumps({"requests": 6}))
    assert gates_main([], default_logs_dir=str(logs), default_results_dir=str(results)) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "PASS metrics_present: " in "\n".join(lines)
    assert sum(line.startswith("PASS ") for line in lines) == 6  # five gates and the fallbacks line


def test_gates_main_fails_without_metrics(tmp_path, capsys):
    logs = logs_with(tmp_path, GOOD)
    assert gates_main([], str(logs), str(tmp_path / "results")) == 1
    assert "FAIL metrics_present" in capsys.readouterr().out
    assert gates_main(["--no-metrics"], str(logs), str(tmp_path / "results")) == 0


def test_gates_main_explicit_metrics_and_header_leak(tmp_path, capsys):
    logs = logs_with(tmp_path, GOOD + [rec("hm", header_mode="x-api-key")])
    metrics = tmp_path / "m.json"
    metrics.write_text(json.dumps({"requests": 7}))
    assert gates_main([str(logs), "--metrics", str(metrics)], "unused", "unused") == 1
    out = capsys.readouterr().out
    assert "FAIL no_header_mode_on_anthropic" in out and "hm" in out
    assert "PASS metrics_present" in out


def test_gates_main_missing_log_is_usage_error(tmp_path, capsys):
    assert gates_main([str(tmp_path / "missing")], "unused", "unused") == 2
    assert "UsageError:" in capsys.readouterr().err


def test_gates_extra_checks(tmp_path, capsys):
    import json as _json

    from reports.verify import gates_main
    log = tmp_path / "usage.jsonl"
    log.write_text(_json.dumps({"rid": "r1", "ts": "2026-11-25T10:00:00.000Z", "model": "claude-sonnet-4-5",
                                "lane": "anthropic", "decision": "to_anth", "op": "nonstream",
                                "status": 200}) + "\n")
    assert gates_main([str(log), "--no-metrics", "--providers"], str(tmp_path), str(tmp_path)) == 0
    assert "PASS providers_resolve" in capsys.readouterr().out
    assert gates_main([str(log), "--no-metrics", "--since", "2026-11-25T11:00:00.000Z"],
                      str(tmp_path), str(tmp_path)) == 1
    assert "FAIL rotated_before_run" in capsys.readouterr().out
    assert gates_main([str(log), "--no-metrics", "--readyz", "http://127.0.0.1:9"],
                      str(tmp_path), str(tmp_path)) == 1
    assert "FAIL readyz_ok: no /readyz report" in capsys.readouterr().out
