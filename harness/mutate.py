"""Mutation testing of the shim: a library of seeded bugs, each applied in a copy of the tree and
run against a layer of the checks (`ccp mutate`, `make mutate`, `make mutate-sample`).

The library (harness/mutants.toml) is data: each mutant names a file and a function of `proxy/`,
the exact text it replaces once inside that function's source span (found with `ast`, so an edit
never lands in another function), the property it breaks (one sentence) and the tests written for
that property (`tests`, pytest node ids), and, for the mutants `make repro` must catch, the repro
gates written for it (`gates`). A mutant whose `find` is not in its function exactly once is an
error of the library, said loudly, never skipped.

Each worker owns a copy of the tree (`git ls-files` plus untracked files that are not ignored;
`.venv` and `.tools` are symlinks). Per mutant it patches one file, checks that the shim still
imports and starts and answers /healthz (a mutant that crashes at import proves nothing and is
reported as `invalid`, never as caught), runs the layer, and puts the file back. Before any
mutant, the unmutated copy must pass the mutants' own tests (or `ccp repro`): a check that fails
anyway would catch everything.

| layer   | what runs                                                              |
|---------|------------------------------------------------------------------------|
| named   | the mutant's own tests only (the CI sample)                             |
| quick   | its own tests marked quick, then `pytest -m quick -x` (no process runs)  |
| test    | its own tests, then the whole suite with `-x`                           |
| repro   | `ccp repro`, as `make repro` runs it (a FAILED gate catches it)         |

A mutant is `caught` when a test failed (the first failing node id is the catcher, and the table
says whether it is one of the mutant's own tests) or a gate failed (the FAILED gates are the
catcher; own when one of them is among the mutant's `gates`); `survived` when everything
passed (the report shows the diff that survived); `timeout` and `invalid` are neither. Every
process is started in its own process group and that group is ended, on a timeout too.
"""
from __future__ import annotations

import argparse
import ast
import dataclasses
import datetime as dt
import difflib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIBRARY = ROOT / "harness" / "mutants.toml"
LAYERS = ("named", "quick", "test", "repro")
CATEGORIES = ("credentials", "routing", "relay", "records", "conversion", "sessions", "secrets",
              "timeouts", "rotation", "readiness", "quotas", "licence")
# the categories `make repro` alone must catch every mutant of (issue 22, point 3)
REPRO_MUST_CATCH = ("credentials", "routing", "byte-exactness", "one-record")
LINKED = (".venv", ".tools")  # shared, never copied
SKIPPED_DIRS = ("results", "logs", ".bench")  # a copy starts without the tree's run output
APPLIED_ENV = "MUTATE_APPLIED"  # the mutant applied to the tree a check runs in
_FAILED_LINE = re.compile(r"^(FAILED|ERROR) (\S+)", re.MULTILINE)
_GATES_FAILED = re.compile(r"^\[repro\] FAILED: (.+)$", re.MULTILINE)


class LibraryError(ValueError):
    """A mutant that cannot be applied as written (its function or its `find` is not there)."""


@dataclasses.dataclass(frozen=True)
class Mutant:
    name: str
    category: str
    property: str
    file: str
    function: str
    find: str
    replace: str
    tests: tuple[str, ...]
    tags: tuple[str, ...] = ()  # e.g. "byte-exactness", "one-record": what `make repro` must catch
    gates: tuple[str, ...] = ()  # the `ccp repro` gates written for its property (layer repro)

    @property
    def must_repro(self) -> bool:
        return self.category in REPRO_MUST_CATCH or any(t in REPRO_MUST_CATCH for t in self.tags)


def load_library(path: Path = LIBRARY) -> list[Mutant]:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    mutants = []
    for entry in data.get("mutant", []):
        try:
            m = Mutant(name=entry["name"], category=entry["category"], property=entry["property"],
                       file=entry["file"], function=entry["function"], find=entry["find"],
                       replace=entry["replace"], tests=tuple(entry["tests"]),
                       tags=tuple(entry.get("tags", ())), gates=tuple(entry.get("gates", ())))
        except KeyError as exc:
            raise LibraryError(f"mutant {entry.get('name', '?')}: missing {exc}") from None
        if m.category not in CATEGORIES:
            raise LibraryError(f"mutant {m.name}: unknown category {m.category!r}")
        if not m.tests:
            raise LibraryError(f"mutant {m.name}: names no test written for its property")
        if m.must_repro and not m.gates:
            raise LibraryError(f"mutant {m.name}: `make repro` must catch it, but it names no "
                               f"repro gate written for its property (gates)")
        if m.find == m.replace:
            raise LibraryError(f"mutant {m.name}: replace is the same as find")
        mutants.append(m)
    names = [m.name for m in mutants]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise LibraryError(f"mutant names used twice: {dupes}")
    return mutants


# ---------------------------------------------------------------- applying one
def function_span(source: str, qualname: str) -> tuple[int, int]:
    """The character offsets of `qualname`'s definition (decorators excluded) in `source`:
    `name`, `Class.method` or `outer.inner`."""
    tree = ast.parse(source)
    nodes: Sequence[ast.AST] = tree.body
    found: ast.AST | None = None
    for part in qualname.split("."):
        found = next((n for n in nodes if isinstance(
            n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and n.name == part), None)
        if found is None:
            raise LibraryError(f"no function {qualname!r} (at {part!r})")
        nodes = found.body  # type: ignore[attr-defined]
    assert found is not None
    lines = source.splitlines(keepends=True)
    start = sum(len(x) for x in lines[:found.lineno - 1])  # type: ignore[attr-defined]
    end = sum(len(x) for x in lines[:found.end_lineno])  # type: ignore[attr-defined]
    return start, end


def mutated_source(source: str, mutant: Mutant) -> str:
    """`source` with the mutant's `find` replaced once inside its function."""
    start, end = function_span(source, mutant.function)
    body = source[start:end]
    count = body.count(mutant.find)
    if count != 1:
        raise LibraryError(f"mutant {mutant.name}: `find` occurs {count} times in "
                           f"{mutant.file}:{mutant.function} (must be exactly once)")
    new = source[:start] + body.replace(mutant.find, mutant.replace, 1) + source[end:]
    ast.parse(new)  # a mutant is a bug, not a syntax error
    return new


def diff_of(source: str, new: str, path: str) -> str:
    return "".join(difflib.unified_diff(source.splitlines(keepends=True),
                                        new.splitlines(keepends=True), f"a/{path}", f"b/{path}"))


# ---------------------------------------------------------------- the copies
def tree_files(root: Path) -> list[str]:
    """What a copy holds: tracked files plus untracked ones git does not ignore."""
    out = subprocess.run(["git", "-C", str(root), "ls-files", "-z", "--cached", "--others",
                          "--exclude-standard"], check=True, capture_output=True).stdout
    files = []
    for rel in out.decode().split("\0"):
        if not rel or rel.split("/", 1)[0] in (*LINKED, *SKIPPED_DIRS):
            continue
        if (root / rel).is_file():
            files.append(rel)
    return sorted(set(files))


def make_copy(root: Path, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for rel in tree_files(root):
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, target)
    for name in LINKED:
        if (root / name).exists():
            (dest / name).symlink_to((root / name).resolve())
    return dest


class Processes:
    """Every process the run started, each in its own group; `stop_all` ends what is left."""

    def __init__(self) -> None:
        self._live: set[subprocess.Popen] = set()
        self._lock = threading.Lock()
        self.stopping = False

    def run(self, cmd: list[str], cwd: Path, env: dict[str, str], timeout: float) -> tuple[int | None, str]:
        """(exit code or None on a timeout, stdout+stderr)."""
        if self.stopping:
            return None, "stopped"
        with tempfile.TemporaryFile() as out:
            proc = subprocess.Popen(cmd, cwd=str(cwd), env=env, stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
            with self._lock:
                self._live.add(proc)
            try:
                code: int | None = proc.wait(timeout)
            except subprocess.TimeoutExpired:
                code = None
            finally:
                _end_group(proc)
                with self._lock:
                    self._live.discard(proc)
            out.seek(0)
            return code, out.read().decode("utf-8", "replace")

    def stop_all(self) -> None:
        self.stopping = True
        with self._lock:
            live = list(self._live)
        for proc in live:
            _end_group(proc)


def _end_group(proc: subprocess.Popen) -> None:
    """SIGTERM to the process's group, SIGKILL after 5 s; also when the leader is gone already
    (its children may not be)."""
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            break
        try:
            proc.wait(wait)
        except subprocess.TimeoutExpired:
            continue
        try:  # the leader is gone: is anything of its group left?
            os.killpg(proc.pid, 0)
        except (ProcessLookupError, PermissionError):
            break
    if proc.poll() is None:
        proc.wait()


def copy_env(copy: Path) -> dict[str, str]:
    """The environment a copy's checks run in: no provider or ccp variables, the copy first on
    the import path (the venv's editable install points at the original tree)."""
    from harness.shim import clean_env
    env = clean_env()
    env["PYTHONPATH"] = str(copy)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


START_CHECK = """
import sys, tempfile
import proxy.server.app
from harness.shim import ShimProcess, PROJECT_ROOT
assert str(PROJECT_ROOT) == sys.argv[1], (PROJECT_ROOT, sys.argv[1])
import proxy.server.app as app
assert app.__file__.startswith(sys.argv[1]), app.__file__
with tempfile.TemporaryDirectory() as logs:
    with ShimProcess(logs) as shim:
        print("started", shim.url)
"""


# ---------------------------------------------------------------- one result
@dataclasses.dataclass
class Result:
    name: str
    category: str
    property: str
    layer: str
    status: str  # caught | survived | timeout | invalid
    caught_by: str | None = None
    named: bool = False  # caught by one of the mutant's own tests
    seconds: float = 0.0
    diff: str = ""
    detail: str = ""

    def row(self) -> dict:
        return dataclasses.asdict(self)


def first_failure(output: str) -> str | None:
    m = _FAILED_LINE.search(output)
    return m.group(2) if m else None


def is_named(catcher: str | None, tests: Iterable[str]) -> bool:
    if not catcher:
        return False
    return any(catcher == t or catcher.startswith((t + "::", t + "[")) for t in tests)


def is_own_gate(failed: str, gates: Iterable[str]) -> bool:
    """One of the FAILED gates (`a, b` as repro prints them) is one written for the property."""
    return bool({g.strip() for g in failed.split(",")} & set(gates))


def pytest_cmd(copy: Path, targets: list[str], extra: list[str]) -> list[str]:
    return [str(copy / ".venv" / "bin" / "python"), "-m", "pytest", "-x", "-q", "-rfE",
            "-p", "no:cacheprovider", *extra, *targets]


class Worker:
    def __init__(self, root: Path, copy: Path, procs: Processes, timeout: float) -> None:
        self.root, self.copy, self.procs, self.timeout = root, copy, procs, timeout

    def run(self, mutant: Mutant, layer: str) -> Result:
        t0 = time.monotonic()
        res = Result(mutant.name, mutant.category, mutant.property, layer, "invalid")
        path = self.copy / mutant.file
        original = path.read_text(encoding="utf-8")
        try:
            new = mutated_source(original, mutant)
        except (LibraryError, SyntaxError) as exc:
            res.detail = str(exc)
            return res
        res.diff = diff_of(original, new, mutant.file)
        path.write_text(new, encoding="utf-8")
        try:
            self._run(mutant, layer, res)
        finally:
            path.write_text(original, encoding="utf-8")
            res.seconds = round(time.monotonic() - t0, 1)
        return res

    def _run(self, mutant: Mutant, layer: str, res: Result) -> None:
        env = copy_env(self.copy)
        # the library's own test checks every `find` is in the tree: not of the one applied here
        env[APPLIED_ENV] = mutant.name
        py = str(self.copy / ".venv" / "bin" / "python")
        code, out = self.procs.run([py, "-c", START_CHECK, str(self.copy)], self.copy, env, 60)
        if code != 0:
            res.status, res.detail = "invalid", "does not import or start: " + out[-600:]
            return
        steps: list[tuple[str, list[str]]] = []
        if layer in ("named", "test"):
            steps.append(("named", pytest_cmd(self.copy, list(mutant.tests), [])))
        if layer == "quick":  # unit tests only: its own that are quick, then every quick one
            steps.append(("named", pytest_cmd(self.copy, list(mutant.tests), ["-m", "quick"])))
            steps.append(("quick", pytest_cmd(self.copy, [], ["-m", "quick"])))
        elif layer == "test":
            steps.append(("test", pytest_cmd(self.copy, [], [])))
        elif layer == "repro":
            steps.append(("repro", [py, "-m", "proxy", "repro", "--no-progress"]))
        for step, cmd in steps:
            code, out = self.procs.run(cmd, self.copy, env, self.timeout)
            if code is None:
                res.status, res.detail = "timeout", f"{step}: no verdict in {self.timeout:.0f}s"
                return
            if step == "repro":
                gates = _GATES_FAILED.search(out)
                if code != 0:
                    res.status = "caught"
                    res.caught_by = "gate " + (gates.group(1) if gates else f"(exit {code})")
                    res.named = gates is not None and is_own_gate(gates.group(1), mutant.gates)
                    return
                continue
            if code == 1:
                res.status, res.caught_by = "caught", first_failure(out) or f"{step} (exit 1)"
                res.named = is_named(res.caught_by, mutant.tests)
                return
            if code not in (0, 5):  # 2 interrupted, 3 internal error, 4 usage error
                res.status, res.detail = "invalid", f"{step}: pytest exit {code}: {out[-600:]}"
                return
        res.status = "survived"


# ---------------------------------------------------------------- the run
class BaselineError(RuntimeError):
    """The unmutated tree fails the checks: no verdict on any mutant would mean anything."""


def baseline_check(mutants: list[Mutant], layer: str, copy: Path, procs: Processes,
                   timeout: float, workers: int = 1) -> str | None:
    """Run the mutants' own tests (and, for the repro layer, `ccp repro`) on the unmutated copy;
    what failed, or None."""
    env = copy_env(copy)
    tests = list(dict.fromkeys(t for m in mutants for t in m.tests))
    spread = ["-n", str(workers)] if workers > 1 else []  # (pytest-xdist: one run, all cores)
    checks = [("their own tests", pytest_cmd(copy, tests, spread))] if layer != "repro" else [
        ("ccp repro", [str(copy / ".venv" / "bin" / "python"), "-m", "proxy", "repro",
                       "--no-progress"])]
    for what, cmd in checks:
        code, out = procs.run(cmd, copy, env, timeout)
        if code != 0:
            return f"the unmutated tree fails {what} (exit {code}): {out[-1500:]}"
    return None


def run_library(mutants: list[Mutant], layer: str, workers: int, timeout: float,
                root: Path = ROOT, progress=print, baseline: bool = True) -> list[Result]:
    procs = Processes()
    base = Path(tempfile.mkdtemp(prefix="ccp-mutate-"))
    results: list[Result] = []
    try:
        n = max(1, min(workers, len(mutants)))
        pool_copies = [make_copy(root, base / f"copy{i}") for i in range(n)]
        free = list(pool_copies)
        lock = threading.Lock()

        def job(m: Mutant) -> Result:
            with lock:
                copy = free.pop()
            try:
                r = Worker(root, copy, procs, timeout).run(m, layer)
            finally:
                with lock:
                    free.append(copy)
            progress(f"[mutate] {r.status:<8} {m.name:<34} {r.caught_by or r.detail[:60]} "
                     f"({r.seconds:.0f}s)")
            return r

        if baseline:
            failed = baseline_check(mutants, layer, pool_copies[0], procs, timeout, n)
            if failed:
                raise BaselineError(failed)
        with ThreadPoolExecutor(max_workers=n) as pool:
            try:
                results = list(pool.map(job, mutants))
            except BaseException:  # Ctrl-C or SIGTERM (main): no check outlives the run
                procs.stop_all()
                raise
    finally:
        procs.stop_all()
        shutil.rmtree(base, ignore_errors=True)
    return results


def scores(results: list[Result]) -> dict:
    valid = [r for r in results if r.status in ("caught", "survived", "timeout")]
    caught = [r for r in valid if r.status == "caught"]
    return {"mutants": len(results), "valid": len(valid), "caught": len(caught),
            "caught_by_own_test": sum(r.named for r in caught),
            "survived": sum(r.status == "survived" for r in results),
            "timeout": sum(r.status == "timeout" for r in results),
            "invalid": sum(r.status == "invalid" for r in results),
            "score": round(100.0 * len(caught) / len(valid), 1) if valid else 0.0}


def markdown(results: list[Result], layer: str, meta: dict) -> str:
    s = scores(results)
    lines = [f"# Mutation run — layer `{layer}`", "",
             f"{meta['started']} · {s['mutants']} mutant(s) · {meta['workers']} worker(s) · "
             f"{meta['seconds']:.0f} s", "",
             f"**Score: {s['score']} %** ({s['caught']} caught of {s['valid']}; "
             f"{s['caught_by_own_test']} by a test written for the property; "
             f"{s['survived']} survived, {s['timeout']} timed out, {s['invalid']} invalid)", "",
             "| mutant | category | property | status | caught by | own test | time |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        own = "yes" if r.named else ("**no**" if r.status == "caught" else "")
        lines.append(f"| {r.name} | {r.category} | {r.property} | {r.status} | "
                     f"{(r.caught_by or r.detail[:80]).replace('|', '/')} | {own} | {r.seconds:.0f}s |")
    bad = [r for r in results if r.status != "caught"]
    if bad:
        lines += ["", "## Not caught", ""]
        for r in bad:
            lines += [f"### {r.name} ({r.status})", "", r.property, ""]
            if r.detail:
                lines += ["```", r.detail.strip()[:1200], "```", ""]
            lines += ["```diff", r.diff.rstrip(), "```", ""]
    return "\n".join(lines) + "\n"


def write_results(results: list[Result], layer: str, meta: dict, results_dir: Path) -> tuple[Path, Path]:
    results_dir.mkdir(parents=True, exist_ok=True)
    stamp = meta["stamp"]
    md = results_dir / f"MUTATE-{layer}-{stamp}.md"
    js = results_dir / f"MUTATE-{layer}-{stamp}.json"
    md.write_text(markdown(results, layer, meta), encoding="utf-8")
    js.write_text(json.dumps({"layer": layer, **meta, "scores": scores(results),
                              "results": [r.row() for r in results]}, indent=1) + "\n",
                  encoding="utf-8")
    return md, js


def sample(mutants: list[Mutant], k: int, day: dt.date) -> list[Mutant]:
    """`k` mutants rotating by date: the same for a given day, the next `k` the day after."""
    if not mutants:
        return []
    start = (day.toordinal() * k) % len(mutants)
    return [mutants[(start + i) % len(mutants)] for i in range(min(k, len(mutants)))]


def table(results: list[Result]) -> str:
    rows = [f"{'mutant':<34} {'property':<48} {'status':<9} {'own':<4} {'time':>5}  caught by"]
    for r in results:
        prop = r.property if len(r.property) <= 48 else r.property[:47] + "…"
        rows.append(f"{r.name:<34} {prop:<48} {r.status:<9} {'yes' if r.named else '-':<4} "
                    f"{r.seconds:>4.0f}s  {r.caught_by or r.detail[:70]}")
    return "\n".join(rows)


def _interrupted(signum, _frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ccp mutate", description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", metavar="NAME", help="these mutants only")
    parser.add_argument("--category", nargs="+", help="these categories only")
    parser.add_argument("--layer", choices=LAYERS, default="quick",
                        help="which checks run against each mutant (default %(default)s)")
    parser.add_argument("--sample", type=int, metavar="K",
                        help="K mutants rotating by date (the CI sample)")
    parser.add_argument("--repro-set", action="store_true",
                        help="only the mutants `make repro` must catch")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="copies of the tree checked at once (default: the cores, %(default)s)")
    parser.add_argument("--timeout", type=float, default=600.0,
                        help="seconds per check (past it: timeout, never caught)")
    parser.add_argument("--results", help="results folder (default CCP_RESULTS_DIR or results)")
    parser.add_argument("--no-baseline", action="store_true",
                        help="skip the check that the unmutated tree passes first")
    parser.add_argument("--list", action="store_true", help="list the library and exit")
    parser.add_argument("--library", type=Path, default=LIBRARY, help="the library (TOML) to run")
    args = parser.parse_args(argv)
    try:
        mutants = load_library(args.library)
    except (LibraryError, OSError) as exc:  # a library that cannot be run: one line, not a trace
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    if args.only:
        unknown = set(args.only) - {m.name for m in mutants}
        if unknown:
            print(f"unknown mutant(s): {sorted(unknown)}", file=sys.stderr)
            return 2
        mutants = [m for m in mutants if m.name in args.only]
    if args.category:
        mutants = [m for m in mutants if m.category in args.category]
    if args.repro_set:
        mutants = [m for m in mutants if m.must_repro]
    if args.sample:
        mutants = sample(mutants, args.sample, dt.date.today())
    if args.list:
        for m in mutants:
            print(f"{m.name:<34} {m.category:<12} {m.file}:{m.function}  {m.property}")
        return 0
    for m in mutants:  # a library error stops the run before any copy is made
        mutated_source((ROOT / m.file).read_text(encoding="utf-8"), m)
    from proxy.config.load import load_settings
    results_dir = Path(args.results or load_settings().results_dir).resolve()
    now = dt.datetime.now(dt.UTC)
    t0 = time.monotonic()
    print(f"[mutate] {len(mutants)} mutant(s), layer {args.layer}, {args.workers} worker(s)",
          flush=True)
    if threading.current_thread() is threading.main_thread():
        # SIGTERM (and SIGINT, which a shell's background job ignores) end the run and its checks
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, _interrupted)
    try:
        results = run_library(mutants, args.layer, args.workers, args.timeout,
                              progress=lambda line: print(line, flush=True),
                              baseline=not args.no_baseline)
    except BaselineError as exc:
        print(f"[mutate] no run: {exc}", file=sys.stderr)
        return 2
    meta = {"started": now.strftime("%Y-%m-%dT%H:%M:%SZ"), "stamp": now.strftime("%Y%m%dT%H%M%SZ"),
            "workers": args.workers, "seconds": round(time.monotonic() - t0, 1)}
    md, js = write_results(results, args.layer, meta, results_dir)
    s = scores(results)
    print("\n" + table(results))
    print(f"\n[mutate] layer {args.layer}: score {s['score']} % ({s['caught']}/{s['valid']}, "
          f"{s['caught_by_own_test']} by their own test; {s['survived']} survived, "
          f"{s['timeout']} timeout, {s['invalid']} invalid) in {meta['seconds']:.0f}s")
    print(f"[mutate] {md}\n[mutate] {js}")
    return 0 if s["survived"] == 0 and s["timeout"] == 0 and s["invalid"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
