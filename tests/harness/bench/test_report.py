import json

import pytest

from harness.bench import matrix, report
from harness.bench.stats import combine, round_row

pytestmark = pytest.mark.quick


def _result():
    combined = {}
    for target, lat, cpu in (("direct", 1.0, None), ("floor", 1.3, 0.001), ("ccp", 1.6, 0.002)):
        for sc in matrix.scenarios(quick=True):
            rows = [round_row([lat], [lat], 0, 1, 1.0, cpu)]
            combined.setdefault(target, {})[sc.name] = {**combine(rows, None), "peak_rss_mb": 50.0}
    return {"meta": {"date": "2026-11-25 12:00 UTC", "machine": "test box", "python": "3.11",
                     "mode": "quick", "rounds": 1, "body_kb": 64, "versions": {"ccp": "0.1.0"}},
            "targets": ["direct", "floor", "ccp"], "skipped": {"ccr": "npm/node not found"},
            "scenarios": [{"name": s.name, "describe": "d"} for s in matrix.scenarios(quick=True)],
            "combined": combined, "checks": matrix.checks(combined)}


def test_render_has_machine_skips_verdicts_and_a_table_per_scenario():
    page = report.render(_result())
    assert page.startswith("# ccp bench — 2026-11-25 12:00 UTC")
    assert "test box" in page and "ccp 0.1.0" in page
    assert "**ccr skipped**: npm/node not found" in page
    for sc in matrix.scenarios(quick=True):
        assert f"## {sc.name}" in page
    assert "| ccp | 1.60 |" in page
    # the floor is 1 ms CPU/request, ccp 2 ms: the CPU check is missed by a third
    assert "2.00× (target ≤ 1.5×): missed by 33%" in page
    # without CCR or LiteLLM rows their ratios are not measured, never met
    assert "| req/s at 32 clients ÷ CCR's | n/a |" in page


def test_write_saves_markdown_and_json(tmp_path):
    md, js = report.write(_result(), tmp_path, "20261125T120000Z")
    assert md.name == "BENCH-20261125T120000Z.md" and md.read_text().startswith("# ccp bench")
    assert json.loads(js.read_text())["meta"]["machine"] == "test box"


def test_fmt():
    assert report.fmt(None, 2) == "–" and report.fmt(3, 0) == "3" and report.fmt(1234.5, 0) == "1,234"


def test_the_https_path_has_its_ratio_table_and_counts_in_its_scenario_tables():
    result = _result()
    tls = [s for s in matrix.scenarios(quick=True) if s.tls]
    for target, cpu in (("floor-tls", 0.001), ("ccp-tls", 0.0011)):
        for sc in tls:
            c = {**combine([round_row([1.5], [1.5], 0, 1, 1.0, cpu)], None), "peak_rss_mb": 60.0,
                 "handshakes": 31, "h2_share": 0.0}
            result["combined"].setdefault(target, {})[sc.name] = c
    result["targets"] += ["floor-tls", "ccp-tls"]
    result["scenarios"] = [{"name": s.name, "describe": "d", "tls": s.tls}
                           for s in matrix.scenarios(quick=True)]
    result["tls_ratios"] = matrix.tls_ratios(result["combined"])
    page = report.render(result)
    assert "## The https path: each upstream client ÷ floor-tls" in page
    assert "| ccp-tls | 1.10 | 1.10 | – |" in page  # CPU ratios; no 120 KB scenario in a quick run
    assert "TLS handshakes/round | h2 share |" in page
    assert "| ccp-tls | 1.50 |" in page and "| 31 | 0.00 |" in page
    # the cleartext tables keep their columns
    nonstream = page.split("## nonstream_c1", 1)[1].split("## ", 1)[0]
    assert "handshakes" not in nonstream
    assert report.tls_table([]) == []


def test_the_store_table_shows_postgresql_against_sqlite():
    result = _result()
    result["store_ratios"] = [{"scenario": "nonstream_c32", "target": "ccp-pg", "base": "ccp",
                               "cpu_ms_per_req": 0.105, "base_cpu_ms_per_req": 0.1,
                               "cpu_ratio": 1.05, "added_p50_ms": 1.1, "base_added_p50_ms": 1.0,
                               "added_p50_ratio": 1.1, "p50_vs_base_ms": 0.04,
                               "db_cpu_ms_per_req": None}]
    page = report.render(result)
    assert "## PostgreSQL store ÷ SQLite store" in page
    assert "| nonstream_c32 | 0.100 | 0.105 | 1.05 | 1.00 | 1.10 | 1.10 | 0.04 | – |" in page
    assert "PostgreSQL store" not in report.render(_result())  # no ccp-pg row: no table
