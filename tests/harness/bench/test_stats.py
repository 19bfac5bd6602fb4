import pytest

from harness.bench.stats import (
    combine,
    paired_added,
    percentile,
    ratio,
    round_row,
    verdict,
)

pytestmark = pytest.mark.quick


def test_percentile_interpolates_and_handles_edges():
    assert percentile([], 50) is None
    assert percentile([7.0], 99) == 7.0
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([4, 1, 3, 2], 0) == 1 and percentile([4, 1, 3, 2], 100) == 4
    assert percentile(list(range(101)), 99) == pytest.approx(99.0)


def test_round_row_counts_rates_and_cpu_per_success():
    row = round_row([1.0, 2.0, 3.0, 4.0], [], errors=1, started=5, wall_s=2.0, cpu_s=0.004)
    assert row["ok"] == 4 and row["errors"] == 1 and row["rps"] == 2.0
    assert row["cpu_ms_per_req"] == pytest.approx(1.0)
    assert row["ttfb_p50_ms"] is None
    assert round_row([], [], 0, 0, 0.0, None)["rps"] is None


def test_added_latency_pairs_round_by_round():
    target = [{"p50_ms": 5.0}, {"p50_ms": 9.0}, {"p50_ms": 6.0}]
    direct = [{"p50_ms": 4.0}, {"p50_ms": 8.5}, {"p50_ms": 3.0}]
    # per-round differences 1.0, 0.5, 3.0 → median 1.0 (not 6.0 - 4.0 of the medians)
    assert paired_added(target, direct) == 1.0
    assert paired_added([{"p50_ms": None}], [{"p50_ms": 1.0}]) is None


def test_combine_takes_medians_and_sums_errors():
    rows = [round_row([1.0], [], 0, 1, 1.0, 0.001), round_row([3.0], [], 2, 3, 1.0, 0.003),
            round_row([2.0], [], 0, 1, 1.0, 0.002)]
    c = combine(rows, rows)
    assert c["p50_ms"] == 2.0 and c["errors"] == 2 and c["rounds"] == 3
    assert c["added_p50_ms"] == 0.0 and c["cpu_ms_per_req"] == pytest.approx(2.0)
    assert combine(rows, None)["added_p50_ms"] is None


def test_verdicts_say_by_how_much():
    assert verdict("cpu", 1.2, 1.5)["met"] is True
    missed = verdict("cpu", 3.0, 1.5, unit="×")
    assert missed["met"] is False and "missed by 100%" in missed["note"]
    assert verdict("rps", 4.0, 3.0, at_most=False)["met"] is True
    assert verdict("rps", None, 3.0)["met"] is None
    assert ratio(1.0, 0) is None and ratio(None, 2.0) is None and ratio(3.0, 2.0) == 1.5


def test_tls_counts_take_the_median_handshakes_and_the_h2_share_of_all_rounds():
    from harness.bench.stats import tls_counts
    rounds = [{"handshakes": 32, "tls_calls": 100, "h2_calls": 100},
              {"handshakes": 0, "tls_calls": 300, "h2_calls": 100},
              {"handshakes": 1, "tls_calls": 0, "h2_calls": 0}]
    assert tls_counts(rounds) == {"handshakes": 1, "h2_share": 0.5}
    assert tls_counts([{}]) == {"handshakes": None, "h2_share": None}
