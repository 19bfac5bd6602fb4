"""The shim's architecture as contracts: layers, a pure core, no cycles, no harness inside.

`proxy/` is split into layer packages (docs/architecture.md). A module may import its own layer and
the layers below it, never one above; `proxy.core` does no I/O; no two modules import each other,
directly or round a loop (also not through a function-level import, the usual way to hide a cycle);
and the shim never imports the harness, the reports or the scenarios. Imports under
`if TYPE_CHECKING:` are annotations, not dependencies, and do not count.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.quick

ROOT = Path(__file__).resolve().parent.parent
PROXY = ROOT / "proxy"

# low to high; packages on one line are siblings and may not import each other
LAYERS = (
    ("core",),
    ("protocols",),
    ("licence",),
    ("config",),
    ("upstream", "sinks"),
    ("pipeline",),
    ("server",),
    ("mitm",),
    ("cli",),
)
RANK = {pkg: rank for rank, names in enumerate(LAYERS) for pkg in names}
TOP = len(LAYERS)  # proxy/__init__.py and proxy/__main__.py

# what a pure module may not touch: sockets, files, processes, the event loop, databases, HTTP
IO_MODULES = {"aiohttp", "httpx", "httpcore", "h2", "asyncio", "socket", "ssl", "sqlite3",
              "subprocess", "os", "pathlib", "shutil", "tempfile", "io", "urllib.request",
              "mitmproxy", "uvloop", "httptools", "psycopg", "select", "signal"}
OUTSIDE_THE_SHIM = ("harness", "reports", "scenarios", "tests")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _type_checking_block(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def imports_of(path: Path) -> set[str]:
    """Every module `path` imports (absolute names), outside `if TYPE_CHECKING:` blocks."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if _type_checking_block(node):
            for child in node.orelse:  # (the `else:` of a TYPE_CHECKING test runs)
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)  # `from pkg import mod`
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def shim_modules() -> dict[str, Path]:
    return {module_name(p): p for p in PROXY.rglob("*.py")}


def internal_graph() -> dict[str, set[str]]:
    modules = shim_modules()
    return {name: {m for m in imports_of(path) if m in modules and m != name}
            for name, path in modules.items()}


def layer_of(module: str) -> tuple[int, str]:
    parts = module.split(".")
    if module == "proxy":  # the root package: a docstring and nothing else (below)
        return -1, "proxy"
    if parts[1] == "__main__":
        return TOP, "proxy"
    if parts[1] not in RANK:
        raise AssertionError(f"{module}: proxy/{parts[1]} is in no layer (add it to LAYERS)")
    return RANK[parts[1]], parts[1]


def test_every_module_sits_in_a_layer_package():
    loose = [m for m, path in shim_modules().items()
             if m.count(".") == 1 and m != "proxy.__main__" and path.name != "__init__.py"]
    assert loose == [], f"modules directly under proxy/ (put each in its layer): {loose}"
    for module in shim_modules():
        layer_of(module)


def test_the_root_package_imports_nothing():
    assert internal_graph()["proxy"] == set()


def test_the_shim_never_imports_the_harness_reports_or_scenarios():
    bad = sorted(f"{name} imports {m}" for name, path in shim_modules().items()
                 for m in imports_of(path) if m.split(".")[0] in OUTSIDE_THE_SHIM)
    assert bad == []


def test_a_layer_imports_only_itself_and_the_layers_below():
    bad = []
    for name, deps in internal_graph().items():
        rank, package = layer_of(name)
        for dep in deps:
            dep_rank, dep_package = layer_of(dep)
            if dep_rank > rank or (dep_rank == rank and dep_package != package):
                bad.append(f"{name} ({package}) imports {dep} ({dep_package})")
    assert sorted(bad) == []


def test_the_core_does_no_io():
    bad = sorted(f"{name} imports {m}"
                 for name, path in shim_modules().items() if name.startswith("proxy.core")
                 for m in imports_of(path)
                 if m in IO_MODULES or m.split(".")[0] in IO_MODULES)
    assert bad == []


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's components of more than one module (each one an import cycle)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def connect(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return found


def test_there_are_no_import_cycles():
    graph = internal_graph()
    # a package's __init__ that only documents it imports nothing; one that imports its own
    # submodules is not a cycle with them unless they import it back
    assert strongly_connected(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert strongly_connected({"a": {"b"}, "b": set()}) == []


def test_type_checking_imports_do_not_count(tmp_path):
    src = ROOT / "proxy" / "core" / "routing.py"
    assert "proxy.config.catalog" not in imports_of(src)


def test_the_harness_and_reports_have_no_import_cycles_either():
    modules = {module_name(p): p for package in ("harness", "reports")
               for p in (ROOT / package).rglob("*.py")}
    graph = {name: {m for m in imports_of(path) if m in modules and m != name}
             for name, path in modules.items()}
    assert strongly_connected(graph) == []
