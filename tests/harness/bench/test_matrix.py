import json

import pytest

from harness.bench import matrix

pytestmark = pytest.mark.quick


def test_request_body_is_claude_code_sized_json():
    body = matrix.request_body("claude-sonnet-4-5", True, size_kb=64)
    payload = json.loads(body)
    assert 60 * 1024 <= len(body) <= 72 * 1024
    assert payload["model"] == "claude-sonnet-4-5" and payload["stream"] is True
    assert payload["messages"][-1]["role"] == "user"
    # the claude CLI's shape: a dozen tools with schemas, tool_use/tool_result turns, some non-ASCII
    assert len(payload["tools"]) == 12 and all(t["input_schema"]["properties"] for t in payload["tools"])
    kinds = {block["type"] for m in payload["messages"] if isinstance(m["content"], list)
             for block in m["content"]}
    assert {"text", "tool_use", "tool_result"} <= kinds and not body.isascii()


def test_scenarios_cover_the_issue():
    names = {s.name: s for s in matrix.scenarios()}
    assert names["nonstream_c1"].concurrency == 1 and names["nonstream_c32"].concurrency == 32
    assert names["stream50_c32"].deltas == 50 and names["convert_c32"].convert
    hold = names[f"hold_{matrix.HOLD_STREAMS}"]
    assert hold.concurrency >= 1000 and hold.total == hold.concurrency
    assert hold.deltas * hold.delay_ms >= 1000  # each held stream lasts about a second
    assert all(s.cap for s in matrix.scenarios(quick=True))


def test_the_https_path_has_its_scenarios_and_a_quick_subset():
    full = {s.name: s for s in matrix.scenarios() if s.tls}
    assert set(full) == {"tls_nonstream_c1", "tls_nonstream_c32", "tls_stream50_c1",
                         "tls_stream50_c32", matrix.TLS_HOLD, "tls_body120k_c32"}
    assert full["tls_stream50_c1"].concurrency == 1 and full["tls_stream50_c32"].deltas == 50
    hold = full[matrix.TLS_HOLD]
    assert (hold.concurrency, hold.total, hold.stream) == (1000, 1000, True)
    assert hold.pair() == ("direct", f"hold_{matrix.HOLD_STREAMS}")  # see the scenario's comment
    assert full["tls_nonstream_c32"].pair() == ("direct-tls", "tls_nonstream_c32")
    assert matrix.Scenario("x", 1).pair() == ("direct", "x")
    body = full["tls_body120k_c32"]
    assert body.body_kb == 120 and body.concurrency == 32
    assert 110 * 1024 <= len(matrix.request_body("m", True, body.body_kb)) <= 125 * 1024
    quick = [s.name for s in matrix.scenarios(quick=True) if s.tls]
    assert quick == list(matrix.QUICK_TLS) and len(matrix.scenarios(quick=True)) == 9
    assert not any(s.tls for s in matrix.scenarios() if not s.name.startswith("tls_"))


def _tls_combined(over: dict | None = None):
    """floor-tls and ccp-tls on every check's numbers: ccp at 1.1× the floor (all met), or `over`
    replacing ccp-tls's value of one (scenario, key)."""
    floor = {"tls_nonstream_c32": {"cpu_ms_per_req": 0.40}, "tls_stream50_c32": {"cpu_ms_per_req": 0.50},
             "tls_nonstream_c1": {"added_p50_ms": 0.30},
             matrix.TLS_HOLD: {"errors": 0, "added_ttfb_ms": 200.0, "peak_rss_mb": 100.0}}
    ccp = {sc: {k: (v * 1.1 if k != "errors" else 0) for k, v in d.items()} for sc, d in floor.items()}
    for (sc, key), value in (over or {}).items():
        ccp[sc][key] = value
    return {"floor-tls": floor, "ccp-tls": ccp}


def _tls_verdicts(combined):
    return {c["check"]: c for c in matrix.tls_checks(combined)}


def test_the_https_checks_pass_at_1_1_times_the_tls_relay():
    verdicts = _tls_verdicts(_tls_combined())
    assert len(verdicts) == 6 and all(v["met"] is True for v in verdicts.values()), verdicts
    assert {c["check"] for c in matrix.checks(_tls_combined())} >= set(verdicts)


@pytest.mark.parametrize("scenario, key, value, check", [
    ("tls_nonstream_c32", "cpu_ms_per_req", 0.49,
     "https: CPU/request ÷ floor-tls's (non-stream, 32 clients)"),
    ("tls_stream50_c32", "cpu_ms_per_req", 0.61,
     "https: CPU/request ÷ floor-tls's (stream 50 deltas, 32 clients)"),
    ("tls_nonstream_c1", "added_p50_ms", 0.37, "https: added p50 at 1 client ÷ floor-tls's"),
    (matrix.TLS_HOLD, "errors", 1, "https: errors holding 1000 streams"),
    (matrix.TLS_HOLD, "added_ttfb_ms", 301.0, "https: added TTFB holding 1000 streams ÷ floor-tls's"),
    (matrix.TLS_HOLD, "peak_rss_mb", 121.0, "https: peak RSS holding 1000 streams ÷ floor-tls's"),
])
def test_each_https_check_fails_on_its_own_number(scenario, key, value, check):
    verdicts = _tls_verdicts(_tls_combined({(scenario, key): value}))
    assert verdicts[check]["met"] is False and verdicts[check]["value"] is not None
    assert [v["check"] for v in verdicts.values() if v["met"] is not True] == [check]


def test_without_the_tls_rows_the_https_checks_are_not_measured():
    assert all(c["met"] is None for c in matrix.tls_checks({}))


def test_tls_ratios_put_every_client_against_the_tls_relay():
    combined = _tls_combined()
    combined["ccp-tls-h2"] = {"tls_nonstream_c32": {"cpu_ms_per_req": 0.8, "handshakes": 1,
                                                    "h2_share": 1.0},
                              matrix.TLS_HOLD: {"errors": 0, "handshakes": 10}}
    combined["floor"] = {"nonstream_c32": {"cpu_ms_per_req": 0.1}}  # the cleartext path: not a row
    rows = {r["target"]: r for r in matrix.tls_ratios(combined)}
    assert list(rows) == ["floor-tls", "ccp-tls", "ccp-tls-h2"]
    assert rows["floor-tls"]["ratios"]["CPU/req non-stream c32"] == 1.0
    assert rows["ccp-tls"]["ratios"]["held added TTFB"] == pytest.approx(1.1)
    h2 = rows["ccp-tls-h2"]
    assert h2["ratios"]["CPU/req non-stream c32"] == pytest.approx(2.0)
    assert h2["ratios"]["CPU/req stream c32"] is None  # not measured
    assert (h2["handshakes"], h2["hold_handshakes"], h2["h2_share"], h2["hold_errors"]) == (1, 10, 1.0, 0)
    assert matrix.tls_ratios({}) == []


def test_the_load_spec_takes_the_scenarios_body_and_a_tls_targets_ca():
    from harness.bench.targets import Ccp, Direct
    direct = Direct("direct-tls", tls=True)
    direct.start("https://127.0.0.1:9", None, ca="/ca.pem")
    sc = matrix.Scenario("s", 2, stream=True, total=4, tls=True, body_kb=120)
    spec = matrix.spec_for(direct, sc, 64)
    assert spec.ca == "/ca.pem" and spec.url == "https://127.0.0.1:9/v1/messages"
    assert len(spec.body) > 110 * 1024
    ccp = Ccp("ccp-tls", tls=True)
    ccp.url, ccp.ca = "http://127.0.0.1:8", "/ca.pem"
    assert matrix.spec_for(ccp, sc, 64).ca is None  # clients talk plain HTTP to a proxy


def _store_combined(pg_cpu: float = 0.105, pg_added: float = 0.33) -> dict:
    """A synthetic combined dict: ccp (SQLite) and ccp-pg (PostgreSQL) in three scenarios."""
    base = {"nonstream_c1": {"cpu_ms_per_req": 0.2, "added_p50_ms": 0.30},
            "nonstream_c32": {"cpu_ms_per_req": 0.1, "added_p50_ms": 1.0},
            "stream50_c32": {"cpu_ms_per_req": 0.4, "added_p50_ms": 2.0}}
    pg = {"nonstream_c1": {"cpu_ms_per_req": 0.21, "added_p50_ms": pg_added, "p50_vs_base_ms": 0.02,
                           "db_cpu_ms_per_req": 0.05},
          "nonstream_c32": {"cpu_ms_per_req": pg_cpu, "added_p50_ms": 1.1},
          "stream50_c32": {"cpu_ms_per_req": 0.42, "added_p50_ms": 2.2},
          "hold_1000": {"cpu_ms_per_req": 1.0}}  # (ccp has no such row here: no pair, no ratio row)
    return {"ccp": base, "ccp-pg": pg, "floor": {"nonstream_c32": {"cpu_ms_per_req": 0.08}}}


def test_store_ratios_put_the_postgresql_store_against_sqlite_per_scenario():
    rows = matrix.store_ratios(_store_combined())
    assert [r["scenario"] for r in rows] == ["nonstream_c1", "nonstream_c32", "stream50_c32"]
    first = rows[0]
    assert (first["target"], first["base"]) == ("ccp-pg", "ccp")
    assert first["cpu_ratio"] == pytest.approx(1.05)
    assert first["added_p50_ratio"] == pytest.approx(1.1)
    assert (first["p50_vs_base_ms"], first["db_cpu_ms_per_req"]) == (0.02, 0.05)
    assert rows[1]["cpu_ratio"] == pytest.approx(1.05) and rows[1]["p50_vs_base_ms"] is None
    assert matrix.store_ratios({"ccp": {"nonstream_c1": {}}}) == []  # no ccp-pg: no table


def test_the_store_checks_allow_a_tenth_more_cpu_per_request_than_sqlite():
    met = {c["check"]: c for c in matrix.store_checks(_store_combined())}
    assert len(met) == 2 and all(c["met"] is True for c in met.values())
    assert all(name.startswith(matrix.STORE_CHECK_PREFIX) for name in met)
    missed = {c["check"]: c for c in matrix.store_checks(_store_combined(pg_cpu=0.12))}
    assert missed["postgresql store: CPU/request ÷ ccp's (non-stream, 32 clients)"]["met"] is False
    assert all(c["met"] is None for c in matrix.store_checks({"ccp": {}}))  # ccp-pg skipped
    assert {c["check"] for c in matrix.checks(_store_combined())} >= set(met)
