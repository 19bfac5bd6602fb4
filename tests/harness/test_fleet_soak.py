"""The fleet soak (harness.fleet_soak): its plan, the books compared, the gates and the page, the
load generator's round-robin and retry against real sockets, what the restarted shim's log says,
and the verb's arguments and artifacts (the fleet itself is scenarios/soak/test_fleet_soak.py)."""
import http.server
import json
import threading
from types import SimpleNamespace

import pytest

from harness import fleet_soak
from harness.fleet_soak import (
    PHASES,
    Load,
    Plan,
    account,
    gates,
    imported_at_start,
    phase_answers,
    plan,
    render_markdown,
)
from harness.shim import ShimProcess
from harness.soak import build_parser

pytestmark = pytest.mark.quick


def test_the_plan_gives_each_phase_a_quarter_and_refuses_a_tiny_load():
    p = plan(300)
    assert p == Plan(300, 75) and p.hard_cap == 6000
    assert len(PHASES) == 4
    with pytest.raises(ValueError, match="at least 12"):
        plan(11)


def test_the_books_agree_when_every_record_is_stored_once_under_its_instance():
    acc = account(["a1", "b1"], {"f0": ["a1", "a2"], "f1": ["b1"]},
                  [("a1", "f0"), ("a2", "f0"), ("b1", "f1")])
    assert (acc["answered"], acc["jsonl_records"], acc["stored_rows"], acc["expected"]) == (2, 3, 3, 3)
    assert acc["jsonl_by_instance"] == {"f0": 2, "f1": 1}
    assert acc["stored_by_instance"] == {"f0": 2, "f1": 1}
    for key in ("lost", "duplicated", "unrecorded", "misattributed", "phantom", "answered_twice"):
        assert acc[key] == [], key


def test_the_books_name_what_is_lost_duplicated_unrecorded_misattributed_and_phantom():
    acc = account(["a1", "x9", "x9"], {"f0": ["a1", "a2", "a2"], "f1": ["b1"]},
                  [("a1", "f1"), ("b1", "f1"), ("b1", "f1"), ("zz", "f2")])
    assert acc["lost"] == ["a2", "x9"]  # logged (a2) or answered (x9), not stored
    assert acc["duplicated"] == ["a2", "b1"]  # logged twice / stored twice
    assert acc["unrecorded"] == ["x9"] and acc["answered_twice"] == ["x9"]
    assert acc["misattributed"] == ["a1"]  # f0 logged it, the store says f1
    assert acc["phantom"] == ["zz"]
    assert account([], {"f0": iter(["a"])}, iter([("a", None)]))["stored_by_instance"] == {"?": 1}


EVENTS = [{"what": "kill", "at_s": 1.0, "answers": 80, "answers_after": 80},
          {"what": "restart", "at_s": 1.0, "answers": 81, "answers_after": 500, "seconds": 2.0},
          {"what": "db_stop", "at_s": 4.0, "answers": 580, "answers_after": 600, "seconds": 0.2},
          {"what": "db_start", "at_s": 5.0, "answers": 680, "answers_after": 700, "seconds": 0.2}]


def test_each_phase_counts_the_answers_between_the_chaos():
    assert phase_answers(EVENTS, 780) == dict(zip(PHASES, (80, 80, 80, 80), strict=True))
    assert phase_answers(EVENTS[:1], 100) == {}  # the chaos did not all happen


def _clean():
    return account(["a"], {"f0": ["a"]}, [("a", "f0")])


def test_the_gates_pass_on_clean_books_with_the_chaos_done_under_load():
    verdicts = gates(_clean(), Plan(1, 80), EVENTS, phase_answers(EVENTS, 780))
    assert [v.name for v in verdicts] == ["fleet_load", "fleet_chaos", "fleet_lost",
                                          "fleet_duplicated", "fleet_unrecorded",
                                          "fleet_misattributed", "fleet_phantom"]
    assert all(v.ok for v in verdicts), verdicts
    assert "after the restart 80" in verdicts[1].detail


def test_the_gates_fail_on_a_lost_record_a_short_phase_or_chaos_not_done():
    acc = account(["a", "b"], {"f0": ["a", "b"]}, [("a", "f0")])
    by = {v.name: v for v in gates(acc, Plan(2, 80), EVENTS, phase_answers(EVENTS, 780))}
    assert not by["fleet_lost"].ok and by["fleet_lost"].detail.startswith("1 answered or logged")
    assert by["fleet_duplicated"].ok
    short = {v.name: v for v in gates(_clean(), Plan(1, 90), EVENTS, phase_answers(EVENTS, 780))}
    assert not short["fleet_chaos"].ok and "under 90 answers" in short["fleet_chaos"].detail
    none = {v.name: v for v in gates(_clean(), Plan(1, 1), EVENTS[:2], {})}
    assert none["fleet_chaos"].detail == "not done: db_stop, db_start"
    assert not {v.name: v for v in gates(_clean(), Plan(5, 1), EVENTS, {})}["fleet_load"].ok


def test_the_page_has_the_counts_the_chaos_and_the_gates():
    acc = _clean()
    report = {"run": "r", "started_at": "t", "postgres": "127.0.0.1:1",
              "totals": {"clients": 4, "requests": 1, "ok": 1, "retried": 0, "seconds": 1.0,
                         "caught_up_s": None},
              "accounting": acc, "reconciled": "nothing", "phases": {PHASES[0]: 1},
              "events": [{**EVENTS[1], "at_s": 0.5, "detail": "pid 1"}],
              "gates": [v._asdict() for v in gates(acc, Plan(1, 1), [], {})]}
    page = render_markdown(report)
    assert page.startswith("# Fleet soak r")
    assert "**lost 0, duplicated 0**" in page and "the store held all of them – s" in page
    assert "| 0.50 | 81 | restart | 2.00 | pid 1 |" in page
    assert "| fleet_chaos | **FAIL** |" in page and "| fleet_lost | PASS |" in page


class _Shim(http.server.BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 - the stdlib's name
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        self.server.seen.append(body)
        text = ("event: message_stop\n\n" if body["stream"] else '{"content": []}').encode()
        self.send_response(200)
        self.send_header("x-ccp-request-id", f"r{len(self.server.seen)}")
        self.send_header("content-length", str(len(text)))
        self.end_headers()
        self.wfile.write(text)

    def log_message(self, *args):
        pass


@pytest.fixture
def shim_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Shim)
    server.seen = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_the_load_goes_round_robin_and_on_to_the_next_shim_when_one_is_away(shim_server):
    from harness.postgres import free_port
    alive = f"http://127.0.0.1:{shim_server.server_address[1]}"
    dead = f"http://127.0.0.1:{free_port()}"  # nobody listens: refused, as a killed shim
    load = Load([alive, dead, alive], "key", total=9, clients=1).start()
    load.join(10, stop=False)
    assert load.sent == 9 and len(load.answers) == 9
    assert all(a["ok"] and a["status"] == 200 for a in load.answers)
    assert {a["shim"] for a in load.answers} == {"f0", "f2"}  # f1's turn went on to f2
    assert [f["shim"] for f in load.failures] == ["f1"] * 3
    assert [b["model"] for b in shim_server.seen[:2]] == list(fleet_soak.MODELS)
    assert [b["stream"] for b in shim_server.seen[:3]] == [False, False, True]


def test_what_the_restarted_shims_reconcile_said_is_read_from_its_new_log_lines(tmp_path):
    shim = ShimProcess(tmp_path)
    shim.stderr_path.write_text("usage store x: 9 record(s) of the usage log's last 10 imported\n")
    since = shim.stderr_path.stat().st_size
    assert imported_at_start(shim, since) == "nothing (the store had every record of its log)"
    with open(shim.stderr_path, "a") as fh:
        fh.write("INFO usage store y: 3 record(s) of the usage log's last 27 imported (written …)\n")
    assert imported_at_start(shim, since) == "3 record(s) of the last 27 in its usage.jsonl"
    assert imported_at_start(ShimProcess(tmp_path / "none"), 0) == "its log could not be read"


def _args(tmp_path, *extra):
    return build_parser().parse_args(["--fleet", "--run", "u", "--results", str(tmp_path), *extra])


def test_the_verb_refuses_a_tiny_load_and_says_when_postgresql_is_missing(tmp_path, monkeypatch,
                                                                          capsys):
    assert fleet_soak.run(_args(tmp_path, "--fleet-requests", "5")) == 2
    assert "at least 12" in capsys.readouterr().err
    assert fleet_soak.run(_args(tmp_path, "--fleet-clients", "0")) == 2
    monkeypatch.setattr(fleet_soak, "find_bin_dir", lambda: None)
    assert fleet_soak.run(_args(tmp_path)) == 2
    assert "PostgreSQL is not installed" in capsys.readouterr().err
    args = _args(tmp_path)
    assert (args.fleet, args.fleet_requests, args.fleet_clients) == (True, 600, 4)


class _FakeFleet:
    """What run() asks of a FleetSoak, with canned books."""

    def __init__(self, logs_dir, requests, clients):
        self.plan = plan(requests)
        self.server = SimpleNamespace(port=5432)
        self.events = EVENTS
        self.reconciled = "nothing"
        self.load = SimpleNamespace(answers=[{"rid": "a", "ok": True}], failures=[])
        self.closed = False
        _FakeFleet.last = self

    def setup(self):
        pass

    def run(self):
        rids = [f"r{i}" for i in range(12)]
        return {"accounting": account(rids, {"f0": rids}, [(r, "f0") for r in rids[self.lose:]]),
                "load_s": 1.0,
                "caught_up_s": 0.1, "phases": phase_answers(EVENTS, 780)}

    def say(self, text):
        print(text)

    def close(self):
        self.closed = True


@pytest.mark.parametrize("lose, code", [(0, 0), (1, 1)])
def test_the_verb_writes_its_page_json_and_tests_entry_and_fails_on_a_lost_record(
        tmp_path, monkeypatch, capsys, lose, code):
    monkeypatch.setattr(fleet_soak, "find_bin_dir", lambda: tmp_path)
    monkeypatch.setattr(_FakeFleet, "lose", lose, raising=False)
    monkeypatch.setattr(fleet_soak, "FleetSoak", _FakeFleet)
    assert fleet_soak.run(_args(tmp_path, "--fleet-requests", "12")) == code
    assert _FakeFleet.last.closed
    data = json.loads((tmp_path / "overnight" / "u-FLEET.json").read_text())
    assert data["totals"]["requests"] == 12 and data["postgres"] == "127.0.0.1:5432"
    assert len(data["accounting"]["lost"]) == (0 if code == 0 else 1)
    assert (tmp_path / "overnight" / "u-FLEET.md").read_text().startswith("# Fleet soak u")
    assert "soak --fleet u" in (tmp_path / "TESTS.md").read_text()
    out = capsys.readouterr().out
    assert ("PASS fleet_lost" if code == 0 else "FAIL fleet_lost") in out
