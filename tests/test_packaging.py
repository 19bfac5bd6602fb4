"""pyproject.toml's dependency lists against what the code imports, and tox against `make test`.

The shim's runtime `dependencies` are exactly the distributions that proxy/ imports (mitmproxy aside:
requirements-mitm.txt installs it with --no-deps); the harness, the reports, lint and test tools sit
in extras, and `dev` is all of them. A new third-party import fails here until pyproject.toml and
IMPORT_TO_REQUIREMENT below name it.
"""
import ast
import re
import sys
import tomllib
from pathlib import Path

import pytest

pytestmark = pytest.mark.quick

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]
EXTRAS = PROJECT["optional-dependencies"]

# top-level import name -> the requirement (name[extra]) that provides it
IMPORT_TO_REQUIREMENT = {
    "aiohttp": "aiohttp", "httpx": "httpx[http2]", "h2": "httpx[http2]", "httpcore": "httpcore",
    "certifi": "certifi", "yaml": "pyyaml", "prometheus_client": "prometheus-client",
    "rich": "rich", "cryptography": "cryptography", "orjson": "orjson", "jiter": "jiter",
    "msgspec": "msgspec", "httptools": "httptools", "uvloop": "uvloop",
    "anthropic": "anthropic", "openai": "openai", "hypercorn": "hypercorn", "trustme": "trustme",
    "opensandbox": "opensandbox", "docker": "docker", "pandas": "pandas", "jinja2": "jinja2",
    "markupsafe": "markupsafe", "pytest": "pytest", "hypothesis": "hypothesis", "httpx2": "httpx2",
    "mitmproxy": "mitmproxy",  # requirements-mitm.txt, --no-deps
    "yarl": "aiohttp", "multidict": "aiohttp",  # aiohttp's own types, used by tests only
    # the [postgres] extra: a PostgreSQL usage store (proxy/sinks/store_pg.py only)
    "psycopg": "psycopg[binary,pool]", "psycopg_pool": "psycopg[binary,pool]",
}
# proxy/ modules that import an extra's packages, and which extra (the shim imports them only when
# the store is PostgreSQL: proxy.sinks.engines.open_engine)
OPTIONAL_MODULES = {"proxy/sinks/store_pg.py": "postgres"}
# the bench's candidate upstream clients: installed into .bench/venv-candidates on demand
# (harness.bench.external.CANDIDATE_PACKAGES), never ccp's dependencies; the tests skip without them
BENCH_CANDIDATES = {"curl_cffi", "niquests", "rnet"}
# required, never imported: aiohttp decodes `content-encoding: br` request bodies with it
UNIMPORTED_RUNTIME = {"brotli"}
# run as programs, not imported
UNIMPORTED_EXTRAS = {"py-spy", "pytest-xdist", "ruff", "mypy"}


def _name(requirement: str) -> str:
    """'httpx[http2]>=0.27; marker' -> 'httpx[http2]' (lower-case, - for _)."""
    head = re.split(r"[<>=!~;\s]", requirement, maxsplit=1)[0]
    return head.lower().replace("_", "-")


def _base(requirement: str) -> str:
    return _name(requirement).split("[")[0]


def third_party_imports(*folders: str, skip: str | tuple[str, ...] | None = None
                        ) -> dict[str, set[str]]:
    """Top-level third-party modules imported anywhere under the folders (function-level imports
    too), each with the files that import it."""
    local = {"proxy", "harness", "reports", "tests", "scenarios", "conftest"}
    found: dict[str, set[str]] = {}
    for folder in folders:
        top = ROOT / folder
        for path in [top] if top.is_file() else sorted(top.rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if skip and rel.startswith(skip):
                continue
            for node in ast.walk(ast.parse(path.read_text(), rel)):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top not in sys.stdlib_module_names | local | BENCH_CANDIDATES:
                        found.setdefault(top, set()).add(rel)
    return found


def _requirements(*lists: list[str]) -> set[str]:
    return {_name(r) for group in lists for r in group if not r.startswith("ccp[")}


def test_runtime_dependencies_are_exactly_what_the_shim_imports():
    imports = third_party_imports("proxy", skip=("proxy/mitm/", *OPTIONAL_MODULES))
    unknown = sorted(set(imports) - set(IMPORT_TO_REQUIREMENT))
    assert not unknown, f"new imports in proxy/: {({m: sorted(imports[m]) for m in unknown})}"
    needed = {IMPORT_TO_REQUIREMENT[m] for m in imports}
    declared = _requirements(PROJECT["dependencies"])
    assert needed - declared == set(), "imported by proxy/ but not in [project] dependencies"
    assert declared - needed - UNIMPORTED_RUNTIME == set(), "in dependencies, not imported by proxy/"


def test_optional_modules_import_only_the_runtime_and_their_extra():
    for module, extra in OPTIONAL_MODULES.items():
        imports = third_party_imports(module)
        have = _requirements(PROJECT["dependencies"], EXTRAS[extra])
        assert {IMPORT_TO_REQUIREMENT[m] for m in imports} <= have, module


def test_the_mitm_front_imports_only_the_runtime_and_mitmproxy():
    imports = third_party_imports("proxy/mitm")
    needed = {IMPORT_TO_REQUIREMENT[m] for m in imports} - {"mitmproxy"}
    assert needed <= _requirements(PROJECT["dependencies"])
    pins = (ROOT / "requirements-mitm.txt").read_text().splitlines()
    assert "mitmproxy" in {_base(line) for line in pins if line and not line.startswith("#")}


@pytest.mark.parametrize(("folders", "extras"), [
    (("harness", "scenarios"), ("harness", "test", "postgres")),
    (("reports",), ("reports",)),
    (("tests",), ("harness", "reports", "test", "postgres")),
])
def test_each_folder_is_covered_by_the_runtime_and_its_extras(folders, extras):
    imports = third_party_imports(*folders)
    unknown = sorted(set(imports) - set(IMPORT_TO_REQUIREMENT))
    assert not unknown, f"new imports: {({m: sorted(imports[m]) for m in unknown})}"
    have = _requirements(PROJECT["dependencies"], *(EXTRAS[e] for e in extras)) | {"mitmproxy"}
    have |= {_base(r) for r in have}
    missing = {m: sorted(imports[m]) for m in imports if IMPORT_TO_REQUIREMENT[m] not in have}
    assert not missing, f"imported, but in none of {extras}: {missing}"


def test_no_extra_requirement_is_unused():
    imported = {IMPORT_TO_REQUIREMENT[m] for m in
                third_party_imports("proxy", "harness", "reports", "tests", "scenarios")}
    imported |= {_base(r) for r in imported}
    for extra in ("harness", "reports", "test", "lint", "postgres"):
        unused = _requirements(EXTRAS[extra]) - imported - UNIMPORTED_EXTRAS
        assert not unused, f"[{extra}] lists what nothing imports: {unused}"


def test_the_bench_candidates_are_what_the_bench_installs_for_them():
    from harness.bench.external import CANDIDATE_PACKAGES
    assert {_base(p).replace("-", "_") for p in CANDIDATE_PACKAGES} >= BENCH_CANDIDATES


def test_dev_is_every_other_extra_and_the_mitm_extra_leaves_mitmproxy_out():
    assert EXTRAS["dev"] == ["ccp[harness,reports,mitm,postgres,lint,test]"]
    assert set(EXTRAS) == {"harness", "reports", "mitm", "postgres", "lint", "test", "dev"}
    assert "mitmproxy" not in {_base(r) for r in EXTRAS["mitm"]}  # its pins collide: --no-deps


def _make_recipe(target: str) -> tuple[list[str], list[str]]:
    """(prerequisites, recipe lines) of one Makefile target."""
    lines = (ROOT / "Makefile").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{target}:"))
    prereqs = lines[start].split(":", 1)[1].split()
    recipe = []
    for line in lines[start + 1:]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip())
    return prereqs, recipe


def test_tox_runs_make_tests_command_in_an_env_built_as_make_venv_builds_it():
    import configparser
    tox = configparser.ConfigParser(interpolation=None)
    tox.read(ROOT / "tox.ini")
    env = tox["testenv"]
    prereqs, recipe = _make_recipe("test")
    assert prereqs == ["$(STAMP)", "$(CLAUDE)"]
    (make_cmd,) = recipe
    (tox_cmd,) = env["commands"].strip().splitlines()
    workers = re.search(r"^PYTEST_WORKERS \?= (\d+)$", (ROOT / "Makefile").read_text(), re.M)[1]
    make_cmd = make_cmd.replace("$(BIN)/", "").replace("$(PYTEST_WORKERS)", workers)
    tox_cmd = (tox_cmd.replace(f"{{env:PYTEST_WORKERS:{workers}}}", workers)
               .replace("{toxinidir}/", "").replace(" {posargs}", ""))
    assert tox_cmd == make_cmd
    _, venv = _make_recipe("$(STAMP)")
    assert "$(BIN)/python -m pip install --quiet -e '.[dev]'" in venv
    assert env["extras"].strip() == "dev" and env["usedevelop"].strip() == "true"  # -e, as make venv
    pre = env["commands_pre"].strip().splitlines()
    assert any("--no-deps -r {toxinidir}/requirements-mitm.txt" in line for line in pre)
    assert any(line.endswith(" claude") and line.startswith("make ") for line in pre)  # $(CLAUDE)
