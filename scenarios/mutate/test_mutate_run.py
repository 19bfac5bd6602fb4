"""`ccp mutate` run as typed on a small library of its own: a mutant its test catches, one that
survives (the report shows the diff that survived, and the run fails), and one that breaks the
shim's start (invalid: never counted as caught). Each runs in a copy of this tree."""
from __future__ import annotations

import json
import subprocess
import sys

from harness.shim import PROJECT_ROOT, clean_env

LIBRARY = '''
[[mutant]]
name = "caught-one"
category = "routing"
property = "OFFLOAD_PAUSED=1 sends haiku to Anthropic."
file = "proxy/core/routing.py"
function = "decide"
find = "if policy.offload_paused:"
replace = "if False:"
tests = ["tests/proxy/core/test_routing.py::test_offload_paused_wins_over_haiku"]
gates = ["toggles_effective"]

[[mutant]]
name = "survivor"
category = "routing"
property = "OFFLOAD_PAUSED=1 sends haiku to Anthropic (run against a test of another module)."
file = "proxy/core/routing.py"
function = "decide"
find = "if policy.offload_paused:"
replace = "if False:"
tests = ["tests/proxy/core/test_jsonl.py"]
gates = ["toggles_effective"]

[[mutant]]
name = "breaks-start"
category = "routing"
property = "The shim starts."
file = "proxy/server/app.py"
function = "create_app"
find = "    app[MODE] = mode"
replace = "    app[MODE] = mode.missing"
tests = ["tests/proxy/core/test_routing.py"]
gates = ["probes_answered"]
'''


def test_ccp_mutate_reports_caught_survived_and_invalid(tmp_path):
    library = tmp_path / "mutants.toml"
    library.write_text(LIBRARY)
    results = tmp_path / "results"
    env = {**clean_env(), "PYTHONPATH": str(PROJECT_ROOT)}
    out = subprocess.run([sys.executable, "-m", "proxy", "mutate", "--library", str(library),
                          "--layer", "named", "--workers", "2", "--results", str(results)],
                         cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 1, out.stdout + out.stderr  # a survivor fails the run
    md = next(results.glob("MUTATE-named-*.md")).read_text()
    data = json.loads(next(results.glob("MUTATE-named-*.json")).read_text())
    by = {r["name"]: r for r in data["results"]}
    assert by["caught-one"]["status"] == "caught" and by["caught-one"]["named"] is True
    assert by["caught-one"]["caught_by"] == (
        "tests/proxy/core/test_routing.py::test_offload_paused_wins_over_haiku")
    assert by["survivor"]["status"] == "survived"
    assert by["breaks-start"]["status"] == "invalid"
    assert data["scores"]["caught"] == 1 and data["scores"]["valid"] == 2
    assert "-    if policy.offload_paused:\n+    if False:" in md  # the diff that survived
    assert "### survivor (survived)" in md
    # the run leaves the tree as it was
    assert "if policy.offload_paused:" in (PROJECT_ROOT / "proxy/core/routing.py").read_text()
