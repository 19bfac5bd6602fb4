"""`ccp mutate` (harness.mutate): the library of seeded bugs, how one is applied, how a run is
scored and reported. The runs themselves (a copy of the tree per worker, the layers) are `make
mutate` and `make mutate-sample`; here the pieces are checked without running a suite."""
from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest

from harness import mutate
from harness.mutate import (
    CATEGORIES,
    LibraryError,
    Mutant,
    Processes,
    Result,
    first_failure,
    function_span,
    is_named,
    is_own_gate,
    load_library,
    markdown,
    mutated_source,
    sample,
    scores,
)

pytestmark = pytest.mark.quick
ROOT = Path(__file__).resolve().parents[2]


def mutant(**kw) -> Mutant:
    base = dict(name="m", category="routing", property="p.", file="x.py", function="f",
                find="a + 1", replace="a - 1", tests=("tests/t.py",))
    return Mutant(**{**base, **kw})


SOURCE = textwrap.dedent('''\
    def f(a):
        return a + 1


    class C:
        def g(self, a):
            return a + 1

        async def h(self):
            def inner():
                return 2 + 1
            return inner
    ''')


# ---------------------------------------------------------------- the library
def test_the_library_has_forty_mutants_over_every_category():
    mutants = load_library()
    assert len(mutants) >= 40
    per = Counter(m.category for m in mutants)
    assert set(per) == set(CATEGORIES), per


def test_every_mutant_applies_once_inside_its_function_and_names_existing_tests():
    applied = os.environ.get(mutate.APPLIED_ENV)  # (in a mutation run: that one is in the tree)
    for m in load_library():
        if m.name == applied:
            continue
        source = (ROOT / m.file).read_text(encoding="utf-8")
        new = mutated_source(source, m)
        start, end = function_span(source, m.function)
        # nothing outside the function's span changed
        assert new[:start] == source[:start], m.name
        assert new[len(new) - (len(source) - end):] == source[end:], m.name
        assert m.file.startswith("proxy/"), m.name
        assert m.property.endswith("."), m.name
        for test in m.tests:
            assert (ROOT / test.split("::")[0]).exists(), (m.name, test)


def test_the_repro_set_holds_the_categories_repro_must_catch():
    must = [m for m in load_library() if m.must_repro]
    cats = {m.category for m in must} | {t for m in must for t in m.tags}
    assert {"credentials", "routing", "byte-exactness", "one-record"} <= cats


def test_every_mutant_repro_must_catch_names_gates_that_repro_has():
    sources = "".join((ROOT / "harness" / f).read_text(encoding="utf-8")
                      for f in ("gates.py", "hygiene.py", "repro.py"))
    for m in load_library():
        assert bool(m.gates) == m.must_repro, m.name
        for gate in m.gates:
            assert f'"{gate}"' in sources, (m.name, gate)


def test_a_failed_gate_of_the_mutant_s_own_is_its_own_catcher():
    assert is_own_gate("probes_answered, compressed_relayed_exact", ("compressed_relayed_exact",))
    assert not is_own_gate("probes_answered", ("compressed_relayed_exact",))
    assert not is_own_gate("routes_at_mocks_x", ("routes_at_mocks",))


def test_a_library_entry_without_tests_or_with_an_unknown_category_is_refused(tmp_path):
    lib = tmp_path / "m.toml"
    entry = ('[[mutant]]\nname="a"\ncategory="%s"\nproperty="p."\nfile="x.py"\nfunction="f"\n'
             'find="1"\nreplace="2"\ntests=%s\n')
    lib.write_text(entry % ("routing", "[]"))
    with pytest.raises(LibraryError, match="names no test"):
        load_library(lib)
    lib.write_text(entry % ("weather", '["t.py"]'))
    with pytest.raises(LibraryError, match="unknown category"):
        load_library(lib)
    lib.write_text(entry % ("routing", '["t.py"]'))
    with pytest.raises(LibraryError, match="names no repro gate"):
        load_library(lib)
    lib.write_text((entry % ("routing", '["t.py"]') + 'gates=["g"]\n') * 2)
    with pytest.raises(LibraryError, match="used twice"):
        load_library(lib)
    lib.write_text(entry % ("rotation", '["t.py"]'))
    assert load_library(lib)[0].gates == ()


# ---------------------------------------------------------------- applying one
def test_the_edit_is_confined_to_the_named_function():
    new = mutated_source(SOURCE, mutant(function="C.g"))
    assert "def f(a):\n    return a + 1" in new  # the same text in f is left alone
    assert "def g(self, a):\n        return a - 1" in new
    nested = mutated_source(SOURCE, mutant(function="C.h.inner", find="2 + 1", replace="2 - 1"))
    assert "return 2 - 1" in nested


def test_a_find_that_is_not_there_exactly_once_fails_loudly():
    with pytest.raises(LibraryError, match="occurs 0 times"):
        mutated_source(SOURCE, mutant(find="a * 2"))
    with pytest.raises(LibraryError, match="occurs 2 times"):
        mutated_source("def f(a):\n    return a + 1 + a + 1\n", mutant())
    with pytest.raises(LibraryError, match="no function"):
        mutated_source(SOURCE, mutant(function="C.missing"))


def test_a_mutant_that_is_not_python_is_refused():
    with pytest.raises(SyntaxError):
        mutated_source(SOURCE, mutant(replace="a +"))


# ---------------------------------------------------------------- verdicts
def test_the_catcher_is_the_first_failed_or_errored_node():
    out = ("....F\n= short test summary info =\nFAILED tests/a.py::test_x[1] - assert 1 == 2\n"
           "ERROR tests/b.py::test_y - boom\n")
    assert first_failure(out) == "tests/a.py::test_x[1]"
    assert first_failure("5 passed in 1.0s\n") is None


def test_own_test_means_a_node_of_the_named_files_or_nodes():
    tests = ("tests/a.py", "scenarios/b.py::test_y")
    assert is_named("tests/a.py::test_x[1]", tests)
    assert is_named("scenarios/b.py::test_y[zai]", tests)
    assert not is_named("scenarios/b.py::test_z", tests)
    assert not is_named("tests/ab.py::test_x", tests)
    assert not is_named(None, tests)


def test_a_timeout_or_an_invalid_mutant_is_never_counted_as_caught():
    rs = [Result("a", "routing", "p", "quick", "caught", "t", True),
          Result("b", "routing", "p", "quick", "survived"),
          Result("c", "routing", "p", "quick", "timeout"),
          Result("d", "routing", "p", "quick", "invalid")]
    s = scores(rs)
    assert (s["caught"], s["valid"], s["survived"], s["timeout"], s["invalid"]) == (1, 3, 1, 1, 1)
    assert s["score"] == pytest.approx(33.3)


def test_the_report_shows_the_diff_that_survived():
    rs = [Result("kept", "relay", "bytes kept.", "quick", "survived", diff="-a\n+b\n"),
          Result("found", "relay", "bytes kept.", "quick", "caught", "tests/t.py::x", False)]
    md = markdown(rs, "quick", {"started": "now", "workers": 2, "seconds": 3.0})
    assert "```diff\n-a\n+b\n```" in md
    assert "| found | relay | bytes kept. | caught | tests/t.py::x | **no** |" in md


def test_the_sample_rotates_by_day_and_is_the_same_within_a_day():
    ms = [mutant(name=f"m{i}") for i in range(20)]
    day = dt.date(2026, 12, 4)
    a, b = sample(ms, 8, day), sample(ms, 8, day)
    assert [m.name for m in a] == [m.name for m in b] and len({m.name for m in a}) == 8
    nxt = sample(ms, 8, day + dt.timedelta(days=1))
    assert {m.name for m in nxt} != {m.name for m in a}
    seen = {m.name for d in range(3) for m in sample(ms, 8, day + dt.timedelta(days=d))}
    assert len(seen) == 20  # three days cover a library of 20


# ---------------------------------------------------------------- copies and processes
def test_a_copy_holds_the_tree_without_run_output_and_links_the_venv(tmp_path):
    src = tmp_path / "src"
    (src / "proxy").mkdir(parents=True)
    (src / "proxy" / "a.py").write_text("x = 1\n")
    (src / "results").mkdir()
    (src / "results" / "old.json").write_text("{}")
    (src / ".venv").mkdir()
    (src / ".gitignore").write_text(".venv\n")
    (src / "new.txt").write_text("untracked, not ignored\n")
    git = ["git", "-C", str(src), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "proxy/a.py", "results/old.json", ".gitignore"], check=True)
    copy = mutate.make_copy(src, tmp_path / "copy")
    assert (copy / "proxy" / "a.py").read_text() == "x = 1\n"
    assert (copy / "new.txt").exists()
    assert not (copy / "results").exists()
    assert (copy / ".venv").is_symlink() and (copy / ".venv").resolve() == (src / ".venv").resolve()


def test_a_check_past_its_timeout_is_ended_with_its_children(tmp_path):
    pidfile = tmp_path / "child.pid"
    script = ("import subprocess, sys, time\n"
              "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
              f"open({str(pidfile)!r}, 'w').write(str(p.pid))\n"
              "time.sleep(60)\n")
    procs = Processes()
    # (10 s: time for two interpreters to start on a loaded machine before the cut)
    code, _ = procs.run([sys.executable, "-c", script], tmp_path, dict(os.environ), timeout=10.0)
    assert code is None and pidfile.exists()
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 10  # (signalled: a loaded machine may take a moment to end it)
    while running(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not running(child)


def running(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie waiting for its reaper is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def test_a_check_that_finishes_gives_its_code_and_output(tmp_path):
    code, out = Processes().run([sys.executable, "-c", "print('hi'); raise SystemExit(3)"],
                                tmp_path, dict(os.environ), timeout=30)
    assert (code, out.strip()) == (3, "hi")


def test_results_are_written_as_markdown_and_json(tmp_path):
    rs = [Result("a", "routing", "p.", "named", "caught", "tests/t.py::x", True, 1.0)]
    meta = {"started": "2026-12-04T00:00:00Z", "stamp": "20261204T000000Z", "workers": 1,
            "seconds": 1.0}
    md, js = mutate.write_results(rs, "named", meta, tmp_path)
    assert md.name == "MUTATE-named-20261204T000000Z.md" and "Score: 100.0 %" in md.read_text()
    data = json.loads(js.read_text())
    assert data["scores"]["caught"] == 1 and data["results"][0]["caught_by"] == "tests/t.py::x"


def test_an_unknown_mutant_name_is_refused(capsys):
    assert mutate.main(["--only", "no-such-mutant"]) == 2
    assert "no-such-mutant" in capsys.readouterr().err


def test_the_baseline_must_pass_before_any_verdict(tmp_path):
    copy = tmp_path / "copy"
    (copy / "tests").mkdir(parents=True)
    (copy / ".venv").symlink_to(Path(sys.prefix))
    (copy / "tests" / "test_ok.py").write_text("def test_ok():\n    assert True\n")
    (copy / "tests" / "test_bad.py").write_text("def test_bad():\n    assert False\n")
    procs = Processes()
    ok = [mutant(tests=("tests/test_ok.py",))]
    bad = [mutant(tests=("tests/test_ok.py",)), mutant(name="n", tests=("tests/test_bad.py",))]
    assert mutate.baseline_check(ok, "named", copy, procs, 60) is None
    failed = mutate.baseline_check(bad, "quick", copy, procs, 60)
    assert failed is not None and "tests/test_bad.py::test_bad" in failed


def test_the_printed_table_names_the_property_and_the_catcher():
    rs = [Result("m1", "relay", "A relayed stream reaches the client byte for byte.", "named",
                 "caught", "tests/t.py::x", True, 3.0)]
    line = mutate.table(rs).splitlines()[1]
    assert line.startswith("m1 ") and "A relayed stream reaches the client byte for" in line
    assert line.rstrip().endswith("tests/t.py::x") and " yes " in line
