import pytest

from harness.soak import (
    DEFAULT_OUTAGE,
    Chaos,
    ProbeEvent,
    gap_totals,
    h1_for,
    lane_gaps,
    late_rids,
    live_status,
    main,
    parse_chaos,
    record_accounting,
    records_for,
    render_markdown,
    stop_reason,
    window_of,
)

pytestmark = pytest.mark.quick


def test_parse_chaos_kills_restarts_and_outages():
    chaos = parse_chaos("kill@3, restart@9 ,outage@5-7,outage@12:reset_before_headers")
    assert chaos.stops == {3: "kill", 9: "restart"}
    assert chaos.outages == ((5, 7, DEFAULT_OUTAGE), (12, 12, "reset_before_headers"))
    assert [chaos.stop_before(n) for n in (2, 3, 9)] == [None, "kill", "restart"]
    assert [chaos.outage_at(n) for n in (4, 5, 7, 8, 12)] == [None, "status=503", "status=503", None,
                                                              "reset_before_headers"]
    assert chaos.describe() == "kill@3,restart@9,outage@5-7:status=503,outage@12-12:reset_before_headers"
    assert parse_chaos("") == Chaos() and parse_chaos(None).describe() == "none"


@pytest.mark.parametrize("spec, message", [
    ("explode@3", "expected kill@N"),
    ("kill3", "expected kill@N"),
    ("kill@0", ">= 1"),
    ("kill@x", ">= 1"),
    ("kill@3,restart@3", "already has kill@3"),
    ("outage@7-5", "backwards"),
    ("outage@2-6,outage@6-8", "overlaps"),
    ("outage@2-3:status=200", "4xx/5xx"),
    ("outage@2-3:melt", "unknown fault kind"),
])
def test_parse_chaos_rejects_bad_items(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_chaos(spec)


def test_h1_every_third_attempt_only_when_asked():
    assert [n for n in range(1, 10) if h1_for(n, True)] == [3, 6, 9]
    assert not any(h1_for(n, False) for n in range(1, 10))


def test_windows_by_attempts_or_minutes():
    assert [window_of(n, 0.0, 4) for n in range(1, 10)] == [1, 1, 1, 1, 2, 2, 2, 2, 3]
    # minutes win over attempts when set
    assert [window_of(n, t, 4, per_minutes=1.0) for n, t in ((1, 0.0), (9, 59.9), (10, 60.0),
                                                             (11, 185.0))] == [1, 1, 2, 4]
    with pytest.raises(ValueError):
        window_of(1, 0.0, 0)


def test_stop_reason():
    assert stop_reason({"haiku": 1, "sonnet": 0}, 1, 10.0, 1.0, 5) is None
    assert stop_reason({"haiku": 2, "sonnet": 1}, 1, 10.0, 1.0, 5) == "done"
    assert stop_reason({"haiku": 2, "sonnet": 1}, 2, 10.0, 1.0, 5) is None
    assert stop_reason({"haiku": 0, "sonnet": 0}, 1, 60.0, 1.0, 5) == "max_minutes"
    assert stop_reason({"haiku": 0, "sonnet": 0}, 1, 1.0, 1.0, 5, max_attempts=5) == "max_attempts"
    assert stop_reason({"haiku": 0, "sonnet": 0}, 1, 1.0, 1.0, 5, max_attempts=0) is None


def _events(lane, outcomes, period=1.0, duration=0.25):
    """One probe per attempt (1-based), starting every `period` seconds."""
    return [ProbeEvent(n, lane, (n - 1) * period, (n - 1) * period + duration, ok)
            for n, ok in enumerate(outcomes, start=1)]


def test_no_failures_no_gaps():
    assert lane_gaps(_events("haiku", [True] * 5)) == []


def test_gaps_run_from_the_first_failure_to_the_next_success_per_lane():
    events = _events("haiku", [True, True, False, True, False, False, True]) + \
        _events("sonnet", [True, True, True, True, False, True, True])
    gaps = lane_gaps(events, restarts=[3, 6])
    assert [(g["lane"], g["first_attempt"], g["last_attempt"], g["failed_probes"], g["recovered_at"],
             g["restarts"], g["open"]) for g in gaps] == [
        ("haiku", 3, 3, 1, 4, 1, False),
        ("haiku", 5, 6, 2, 7, 1, False),
        ("sonnet", 5, 5, 1, 6, 0, False)]
    # attempt 3 started at 2.0 s; attempt 4's success ended at 3.25 s
    assert gaps[0]["seconds"] == pytest.approx(1.25)
    assert gaps[1]["seconds"] == pytest.approx(6.25 - 4.0)
    totals = gap_totals(gaps, ["haiku", "sonnet", "other"])
    assert totals["haiku"] == {"gaps": 2, "seconds": pytest.approx(3.5), "longest_s": pytest.approx(2.25),
                               "failed_probes": 3}
    assert totals["other"] == {"gaps": 0, "seconds": 0, "longest_s": 0.0, "failed_probes": 0}


def test_a_gap_still_open_at_the_end_runs_to_the_end_of_the_run():
    gaps = lane_gaps(_events("zai", [True, False, False]), run_end=10.0)
    assert len(gaps) == 1 and gaps[0]["open"] and gaps[0]["recovered_at"] is None
    assert gaps[0]["seconds"] == pytest.approx(10.0 - 1.0) and gaps[0]["failed_probes"] == 2
    # without a run end: up to the last failed probe's end
    assert lane_gaps(_events("zai", [False]))[0]["seconds"] == pytest.approx(0.25)


def test_records_for_a_window_and_the_accounting():
    records = [{"rid": "a"}, {"rid": "b"}, {"rid": "b"}, {"rid": "x"}]
    assert records_for(records, ["a", "x"]) == [{"rid": "a"}, {"rid": "x"}]
    probes = [{"rid": "a", "reached": True}, {"rid": "b", "reached": True},
              {"rid": "c", "reached": True}, {"rid": None, "reached": False, "attempt": 3, "lane": "haiku"},
              {"rid": None, "reached": True, "attempt": 4, "lane": "sonnet"}]
    acc = record_accounting(probes, records)
    assert acc["missing"] == ["c", "attempt 4/sonnet"]
    assert acc["repeated"] == ["b"] and acc["orphans"] == 1
    assert acc["probes"] == 5 and acc["reached"] == 4 and acc["records"] == 4
    clean = record_accounting(probes[:2], [{"rid": "a"}, {"rid": "b"}])
    assert clean["missing"] == [] and clean["repeated"] == [] and clean["orphans"] == 0


def test_a_cli_probe_finds_its_record_by_session_id_after_the_fact():
    probes = [{"rid": None, "reached": False, "session_id": "s1"},
              {"rid": None, "reached": False, "session_id": "s9"},
              {"rid": "r2", "reached": True, "session_id": None}]
    records = [{"rid": "r1", "client_session": "s1"}, {"rid": "r2", "client_session": None}]
    assert late_rids(probes, records) == 1
    assert probes[0] == {"rid": "r1", "reached": True, "session_id": "s1"}
    assert probes[1]["rid"] is None and not probes[1]["reached"]
    assert record_accounting(probes, records)["orphans"] == 0


def test_summary_page_shows_gaps_windows_restarts_and_gates():
    report = {
        "run": "soak-x", "started_at": "2026-11-25T00:00:00.000Z", "stop_reason": "done",
        "upstreams": "mock",
        "config": {"max_minutes": 1.0, "timeout_secs": 5.0, "sleep_between": 0.0, "toggle_h1": True,
                   "kind": "curl", "until_successes": 2, "chaos": "kill@3"},
        "successes": {"haiku": 2, "sonnet": 3},
        "totals": {"attempts": 4, "seconds": 3.5, "failed_attempts": 1, "failed_attempt_numbers": [3],
                   "recoveries": 1, "planned_restarts": 2},
        "gaps": [{"lane": "haiku", "first_attempt": 3, "last_attempt": 3, "failed_probes": 1,
                  "seconds": 0.75, "restarts": 1, "recovered_at": None}],
        "gap_totals": {"haiku": {"gaps": 1, "seconds": 0.75, "longest_s": 0.75}},
        "windows": [{"index": 1, "first_attempt": 1, "last_attempt": 4, "ok": 6, "probes": 8,
                     "failed": 2, "records": 6, "h1_attempts": 1, "recoveries": 1,
                     "path": "/r/overnight/METRICS_soak-x-w001.json"}],
        "recoveries": [{"after_attempt": 3, "reason": "exited with code -9", "seconds": 0.5, "ok": True}],
        "chaos_log": [{"before_attempt": 3, "what": "kill pid 1"}],
        "gates": [{"name": "lanes_succeeded", "ok": True, "detail": "haiku 2/2"},
                  {"name": "probes_recorded", "ok": False, "detail": "1 missing"}],
        "artifacts": ["/r/overnight/soak-x-SOAK.md"],
    }
    page = render_markdown(report)
    assert "stopped: **done** after 4 attempt(s)" in page
    assert "| haiku | 3–3 | 1 | 0.75 | 1 | open |" in page
    assert "| 1 | 1–4 | 6/8 | 2 | 6 | 1 | 1 | `METRICS_soak-x-w001.json` |" in page
    assert "| 3 | exited with code -9 | 0.50 | yes |" in page
    assert "before attempt 3: kill pid 1" in page
    assert "| probes_recorded | **FAIL** | 1 missing |" in page
    assert "HTTP/1 every third attempt: on" in page


def test_live_status_is_quiet_without_a_terminal(capsys):
    with live_status(4, True) as update:
        update(1, "attempt 1")
    assert capsys.readouterr() == ("", "")


@pytest.mark.parametrize("argv, message", [
    (["--chaos", "boom@1", "--probe", "curl"], "UsageError: --chaos"),
    (["--until-successes", "0", "--probe", "curl"], "UsageError: --until-successes"),
    (["--window", "0", "--probe", "curl"], "UsageError: --until-successes and --window"),
])
def test_usage_errors_exit_2_before_anything_starts(tmp_path, capsys, argv, message):
    assert main([*argv, "--logs", str(tmp_path / "l"), "--results", str(tmp_path / "r")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "r").exists() and not (tmp_path / "l").exists()


def test_a_bad_env_knob_is_a_config_error(monkeypatch, capsys):
    monkeypatch.setenv("MAX_MINUTES", "forever")
    assert main(["--probe", "curl"]) == 2
    assert "ConfigError: MAX_MINUTES='forever'" in capsys.readouterr().err


def test_a_bad_routing_toggle_stops_before_anything_starts(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("ZAI_HEADER_MODE", "cookie")
    assert main(["--probe", "curl", "--logs", str(tmp_path / "l"), "--results", str(tmp_path / "r")]) == 2
    assert "ConfigError: ZAI_HEADER_MODE='cookie'" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
