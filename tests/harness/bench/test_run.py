"""`ccp bench`'s runner (harness.bench.run): the target table, the load each scenario asks for, the
arguments, the smoke check that no target wins by not proxying, one measured round, and the result
the report is written from."""
import gc
import os
import warnings
from types import SimpleNamespace

import pytest

from harness.bench import matrix
from harness.bench.ablate import FEATURES
from harness.bench.external import CCR, LiteLLM
from harness.bench.matrix import HEADERS, spec_for
from harness.bench.run import (
    DEFAULT_TARGETS,
    assemble,
    describe,
    machine,
    make_target,
    measure,
    parse_args,
    smoke,
)
from harness.bench.targets import (
    CONVERT_MODEL,
    PASSTHROUGH_MODEL,
    Ccp,
    CcpPg,
    Direct,
    FastMock,
    Floor,
)

quick = pytest.mark.quick  # (the tests that start the mock are not `quick`)


@quick
@pytest.mark.parametrize("name, kind, without, env", [
    ("direct", Direct, None, None),
    ("floor", Floor, None, None),
    ("ccp", Ccp, (), {}),
    ("ccp-pg", CcpPg, (), {}),  # (its CCP_STORE_URL comes when its server has started)
    ("ccp-aiohttp", Ccp, (), {"CCP_UPSTREAM_CLIENT": "aiohttp"}),
    ("ccp-without-store", Ccp, ("store",), {}),
    ("ccp-without-store+log", Ccp, ("store", "log"), {}),
    ("ccp-bare", Ccp, FEATURES, {}),
    ("litellm", LiteLLM, None, None),
    ("ccr", CCR, None, None),
])
def test_each_target_name_makes_its_target(name, kind, without, env):
    target = make_target(name)
    assert type(target) is kind and target.name == name
    if kind in (Ccp, CcpPg):
        assert (target.without, target.extra_env) == (without, env)


@quick
def test_an_unknown_target_name_is_refused():
    with pytest.raises(KeyError):
        make_target("nginx")


@quick
def test_the_load_spec_sends_the_targets_model_to_its_messages_endpoint():
    target = Direct()
    target.url = "http://127.0.0.1:9"
    sc = matrix.Scenario("s", 7, stream=True, convert=True, total=11, cap=3.0)
    spec = spec_for(target, sc, 8)
    assert spec.url == "http://127.0.0.1:9/v1/messages" and spec.headers == HEADERS
    assert (spec.concurrency, spec.stream, spec.total, spec.duration, spec.cap) == (7, True, 11, None, 3.0)
    assert spec.body == matrix.request_body(PASSTHROUGH_MODEL, True, 8)  # direct: no conversion
    ccp = Ccp()
    ccp.url = target.url
    assert spec_for(ccp, sc, 8).body == matrix.request_body(CONVERT_MODEL, True, 8)


@quick
@pytest.mark.parametrize("sc, words", [
    (matrix.Scenario("a", 1, duration=0.8, cap=20.8),
     "non-stream JSON; 1 concurrent clients; 0.8 s per round; hard cap 20.8 s."),
    (matrix.Scenario("b", 32, stream=True, deltas=50, total=100),
     "stream, 50 deltas; 32 concurrent clients; 100 requests per round; hard cap 60 s."),
    (matrix.Scenario("c", 1000, stream=True, deltas=5, delay_ms=100, total=1000, cap=30.0),
     "stream, 5 deltas × 100 ms; 1000 concurrent clients; 1000 requests per round; hard cap 30 s."),
    (matrix.Scenario("d", 32, convert=True, duration=4.0),
     "Anthropic client → OpenAI provider (conversion); 32 concurrent clients; 4 s per round;"),
])
def test_a_scenario_is_described_in_one_line(sc, words):
    assert describe(sc).startswith(words)


@quick
def test_arguments_default_to_every_target_three_rounds_and_64_kb():
    args = parse_args([])
    assert args.targets.split(",") == list(DEFAULT_TARGETS)
    assert (args.rounds, args.body_kb, args.quick, args.strict, args.ablate, args.results_dir) == \
        (3, 64, False, False, False, None)
    args = parse_args(["--quick", "--rounds", "1", "--targets", "ccp", "--strict", "--no-install"])
    assert (args.quick, args.rounds, args.targets, args.strict, args.no_install) == \
        (True, 1, "ccp", True, True)


@quick
def test_fewer_than_one_round_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        parse_args(["--rounds", "0"])
    assert exc.value.code == 2 and "--rounds must be at least 1" in capsys.readouterr().err


@quick
def test_the_machine_line_names_cores_memory_and_system():
    line = machine()
    assert f", {os.cpu_count()} cores, " in line and " GB RAM, " in line
    assert line.endswith(f"{os.uname().sysname} {os.uname().release}")


@quick
def test_the_machine_line_leaves_no_file_open():
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        machine()
        gc.collect()
    assert not [w for w in seen if issubclass(w.category, ResourceWarning)]


def _row(p50, cpu=None, rss=None, errors=0):
    return {"ok": 10, "errors": errors, "started": 10, "p50_ms": p50, "p99_ms": p50 * 2,
            "ttfb_p50_ms": None, "ttfb_p99_ms": None, "rps": 100.0, "cpu_ms_per_req": cpu,
            "peak_rss_mb": rss, "error_kinds": {}}


@quick
def test_the_result_pairs_every_target_with_direct_round_by_round():
    direct, ccp = Direct(), Ccp()
    ccp.version = "9.9"
    sc = matrix.Scenario("nonstream_c1", 1, total=10)
    rounds = {"direct": {"nonstream_c1": [_row(1.0), _row(2.0)]},
              "ccp": {"nonstream_c1": [_row(1.2, 0.3, 40.0), _row(2.4, 0.3, 52.0)]}}
    args = SimpleNamespace(quick=True, rounds=2, body_kb=64)
    result = assemble(args, [direct, ccp], [sc], rounds, {"ccr": "not installed"})
    c = result["combined"]
    assert c["ccp"]["nonstream_c1"]["added_p50_ms"] == pytest.approx(0.3)  # median of 0.2 and 0.4
    assert c["direct"]["nonstream_c1"]["added_p50_ms"] is None
    assert c["ccp"]["nonstream_c1"]["peak_rss_mb"] == 52.0
    assert c["direct"]["nonstream_c1"]["peak_rss_mb"] is None
    assert result["targets"] == ["direct", "ccp"] and result["skipped"] == {"ccr": "not installed"}
    assert result["scenarios"][0]["describe"] == describe(sc) and result["rounds"] is rounds
    verdicts = {v["check"]: v for v in result["checks"]}
    assert verdicts["added p50 at 1 client"]["met"] is True  # 0.3 ms, at most 0.6
    assert verdicts["req/s at 32 clients ÷ CCR's"]["met"] is None  # not measured in this run
    meta = result["meta"]
    assert (meta["mode"], meta["rounds"], meta["body_kb"]) == ("quick", 2, 64)
    assert meta["versions"]["ccp"] == "9.9" and "aiohttp" in meta["versions"]
    assert result["ablation"] == []


@pytest.fixture
def mock(tmp_path):
    m = FastMock().start(tmp_path)
    yield m
    m.stop()


@pytest.fixture
def impostor(tmp_path):
    """A target that answers every request itself (a second mock) and never reaches the bench's."""
    other = FastMock().start(tmp_path)
    target = Direct()
    target.url = other.url
    yield target
    other.stop()


def _direct_on(mock) -> Direct:
    target = Direct()
    target.start(mock.url, None)
    return target


def test_the_smoke_check_passes_a_target_that_proxies(mock):
    assert smoke(_direct_on(mock), mock, 8) == {}
    assert mock.calls() == 18  # 10 JSON, 4 streams, 4 conversion requests


def test_the_smoke_check_fails_a_target_that_answers_without_proxying(mock, impostor):
    failed = smoke(impostor, mock, 8)
    assert set(failed) == {"json", "stream", "convert"}
    assert failed["json"] == ("smoke check failed (json): 10/10 ok, errors {}, mock received 0")


def test_a_measured_round_counts_answers_the_mock_never_sent_as_errors(mock, impostor):
    sc = matrix.Scenario("nonstream_c1", 2, total=6)
    honest = measure(_direct_on(mock), sc, mock, 8)
    assert (honest["ok"], honest["errors"], honest["started"]) == (6, 0, 6)
    assert honest["p50_ms"] > 0 and honest["rps"] > 0 and honest["error_kinds"] == {}
    assert honest["cpu_ms_per_req"] is None and honest["peak_rss_mb"] is None  # direct: no process
    cheat = measure(impostor, sc, mock, 8)
    assert (cheat["ok"], cheat["errors"]) == (6, 6)


@quick
@pytest.mark.parametrize("name, kind, env", [
    ("direct-tls", Direct, None),
    ("floor-tls", Floor, None),
    ("ccp-tls", Ccp, {}),
    ("ccp-tls-h2", Ccp, {"CCP_HTTP2": "1"}),
    ("ccp-tls-httpx-h1", Ccp, {"CCP_UPSTREAM_CLIENT": "httpx", "CCP_FORCE_H1": "1"}),
    ("ccp-tls-aiohttp", Ccp, {"CCP_UPSTREAM_CLIENT": "aiohttp"}),
])
def test_each_https_target_name_makes_a_tls_target(name, kind, env):
    """(and the peers' https rows, below)"""
    target = make_target(name)
    assert type(target) is kind and target.name == name and target.tls
    if kind in (Ccp, CcpPg):
        assert target.extra_env == env
    assert name in DEFAULT_TARGETS


@quick
def test_the_https_path_pairs_with_direct_tls_and_its_hold_with_the_cleartext_direct():
    direct, direct_tls, floor_tls = Direct(), Direct("direct-tls", tls=True), Floor("floor-tls", tls=True)
    c1 = matrix.Scenario("tls_nonstream_c1", 1, total=10, tls=True)
    hold = matrix.Scenario(matrix.TLS_HOLD, 10, stream=True, total=10, tls=True,
                           baseline=("direct", "hold_1000"))

    def tls_row(p50, hs, h2):
        return {**_row(p50, 0.4, 60.0), "ttfb_p50_ms": p50, "handshakes": hs, "tls_calls": 10,
                "h2_calls": h2}
    rounds = {"direct": {"hold_1000": [{**_row(100.0), "ttfb_p50_ms": 50.0}]},
              "direct-tls": {"tls_nonstream_c1": [tls_row(0.5, 1, 0)],
                             matrix.TLS_HOLD: [tls_row(900.0, 10, 0)]},
              "floor-tls": {"tls_nonstream_c1": [tls_row(0.8, 1, 0)],
                            matrix.TLS_HOLD: [tls_row(300.0, 10, 5)]}}
    args = SimpleNamespace(quick=True, rounds=1, body_kb=64)
    result = assemble(args, [direct, direct_tls, floor_tls], [c1, hold], rounds, {})
    c = result["combined"]
    assert c["floor-tls"]["tls_nonstream_c1"]["added_p50_ms"] == pytest.approx(0.3)
    assert c["direct-tls"]["tls_nonstream_c1"]["added_p50_ms"] is None
    assert c["floor-tls"][matrix.TLS_HOLD]["added_ttfb_ms"] == pytest.approx(250.0)  # − direct's 50
    assert c["direct-tls"][matrix.TLS_HOLD]["added_ttfb_ms"] == pytest.approx(850.0)
    assert (c["floor-tls"][matrix.TLS_HOLD]["handshakes"], c["floor-tls"][matrix.TLS_HOLD]["h2_share"]) == \
        (10, 0.5)
    assert [r["target"] for r in result["tls_ratios"]] == ["floor-tls"]
    assert "Added latency against `direct` in hold_1000" in result["scenarios"][1]["describe"]
    assert describe(c1).startswith("https upstream (the mock's TLS port; h2 or http/1.1 by ALPN): ")


def _direct_tls_on(mock) -> Direct:
    target = Direct("direct-tls", tls=True)
    target.start(mock.tls_url, None, ca=mock.ca)
    return target


def test_the_smoke_check_of_an_https_target_counts_what_reached_the_tls_port(mock):
    assert smoke(_direct_tls_on(mock), mock, 8) == {}
    counts = mock.counts()
    assert counts["tls_calls"] == 14 and counts["calls"] == 14  # 10 JSON, 4 streams: no conversion
    cheat = Direct("direct-tls", tls=True)  # says it is on the https path, talks to the cleartext port
    cheat.start(mock.url, None)
    failed = smoke(cheat, mock, 8)
    assert set(failed) == {"json", "stream"} and "mock received 0" in failed["json"]


def test_a_measured_https_round_counts_handshakes_and_h2_calls(mock):
    sc = matrix.Scenario("tls_nonstream_c1", 2, total=6, tls=True)
    row = measure(_direct_tls_on(mock), sc, mock, 8)
    assert (row["ok"], row["errors"], row["tls_calls"], row["h2_calls"]) == (6, 0, 6, 0)
    assert row["handshakes"] == 2  # two clients, each on one kept connection
    plain = measure(_direct_on(mock), matrix.Scenario("nonstream_c1", 1, total=2), mock, 8)
    assert "handshakes" not in plain


@quick
@pytest.mark.parametrize("name", ["litellm-tls", "ccr-tls"])
def test_the_peers_have_https_rows_by_default(name):
    target = make_target(name)
    assert target.tls and target.name == name and name in DEFAULT_TARGETS


@quick
def test_candidates_add_a_relay_per_candidate_client_on_the_https_path():
    from harness.bench.client_relays import CLIENTS
    from harness.bench.run import parse_args
    assert parse_args(["--candidates"]).candidates and not parse_args([]).candidates
    for client in CLIENTS:
        target = make_target(f"relay-tls-{client}")
        assert target.tls and target.client == client and target.name == f"relay-tls-{client}"


@quick
def test_the_postgresql_store_row_runs_by_default_and_is_paired_with_ccp_round_by_round():
    assert "ccp-pg" in DEFAULT_TARGETS and "ccp-pg" in parse_args([]).targets.split(",")
    sc = matrix.Scenario("nonstream_c32", 32, total=10)
    rounds = {"direct": {sc.name: [_row(1.0), _row(2.0)]},
              "ccp": {sc.name: [_row(1.3, 0.1), _row(2.5, 0.1)]},
              "ccp-pg": {sc.name: [{**_row(1.4, 0.105), "db_cpu_ms_per_req": 0.04},
                                   {**_row(2.5, 0.11), "db_cpu_ms_per_req": 0.06}]}}
    targets = [Direct(), Ccp(), CcpPg()]
    result = assemble(SimpleNamespace(quick=True, rounds=2, body_kb=64), targets, [sc], rounds, {})
    pg = result["combined"]["ccp-pg"][sc.name]
    assert pg["p50_vs_base_ms"] == pytest.approx(0.05)  # median of 0.1 and 0.0, paired per round
    assert pg["db_cpu_ms_per_req"] == pytest.approx(0.05)
    assert "p50_vs_base_ms" not in result["combined"]["ccp"][sc.name]
    [row] = result["store_ratios"]
    assert row["cpu_ratio"] == pytest.approx(0.1075 / 0.1)
    verdicts = {c["check"]: c for c in result["checks"]}
    assert verdicts["postgresql store: CPU/request ÷ ccp's (non-stream, 32 clients)"]["met"] is True
