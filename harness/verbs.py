"""The `ccp` verbs the harness brings: mocks, repro, soak, A/B, bench, mutation runs, the sandbox
smoke and the real-CLI probe.

The shim's own command (proxy.cli.main) never imports the harness; it finds these through the
`ccp.verbs` entry point (pyproject.toml), loading this table, and imports a verb's module only
when that verb runs. An install without the harness simply has no such verbs.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TextIO

# name -> ("module:function" taking argv, one line of help)
VERBS = {
    "mock-upstream": ("harness.mock_upstream:main",
                      "run a mock Anthropic-compatible upstream (no keys needed)"),
    "sandbox-smoke": ("harness.sandbox.smoke:main",
                      "the sandboxed claude task end to end (TC_CLAUDE_PROXY_E2E_SMOKE)"),
    "repro": ("harness.repro:main",
              "the repro job: mocks (or real upstreams), shim, probes, METRICS, gates"),
    "soak": ("harness.soak:main",
             "haiku+sonnet probes in a loop until both lanes succeeded (make overnight)"),
    "ab": ("harness.ab:main",
           "A/B of one toggle: shim restarted per arm, arms interleaved, results/AB-*.md"),
    "probe": ("harness.verbs:probe_main",
              "one real `claude` CLI probe through the shim: probe haiku|sonnet PROMPT"),
    "bench": ("harness.bench.run:main",
              "the benchmark: direct, floor, ccp, LiteLLM, CCR on a mock (--quick, --targets)"),
    "mutate": ("harness.mutate:main",
               "seeded bugs of proxy/ run against a layer (--only, --layer): results/MUTATE-*.md"),
}


def format_probe(res) -> str:
    text = " ".join((res.text or "").split())[:80]
    line = (f"{'ok' if res.ok else 'FAIL'} {res.model} {res.lane or '-'} {json.dumps(text)} "
            f"{res.elapsed_ms:.0f}ms")
    if not res.ok:
        line += f" status={res.status} exit={res.exit_code} error={res.error}"
    return line


def probe_main(argv: list[str], out: TextIO | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ccp probe", description="One real `claude` CLI probe "
                                     "through the running shim (like the operators' `cc h|s`).")
    parser.add_argument("model", help="haiku, sonnet, opus or a model id")
    parser.add_argument("prompt", help="what to ask (quote it)")
    parser.add_argument("--timeout", type=float, default=60.0,
                        help="seconds the CLI call may take (default %(default)s)")
    parser.add_argument("--json", action="store_true", help="print the probe's row as JSON")
    args = parser.parse_args(argv)
    import harness.cli_probe  # the SDK and the probes: imported when the verb runs, not to list it
    from proxy.cli import control  # here, not at the top: this table is read by every `ccp` command
    from proxy.cli.control import LOCALHOST
    from proxy.config.load import load_settings
    from proxy.config.profiles import RunFiles

    settings = load_settings()
    out = sys.stdout if out is None else out
    port = control.current_port(settings, RunFiles(Path(settings.logs_dir)))
    if not control.healthy(port):
        print(f"NotRunning: no shim answers on {LOCALHOST}:{port} (profile {settings.profile}); "
              f"start one with `ccp up`", file=sys.stderr)
        return 1
    res = harness.cli_probe.cli_probe(f"http://{LOCALHOST}:{port}", args.model, args.prompt,
                    auth_token=settings.anthropic_auth_token.reveal() or None,
                    api_key=settings.anthropic_api_key.reveal() or None, timeout=args.timeout)
    if getattr(res, "session_id", None):  # which lane served it: the shim's record of this CLI session
        control.wait_for(lambda: _lane_of(res, RunFiles(Path(settings.logs_dir)).usage), 5.0)
    print(json.dumps(res.row(), default=str) if args.json else format_probe(res), file=out)
    return 0 if res.ok else 1


def _lane_of(res, usage: Path) -> str | None:
    """Fill `res.lane` from the usage record the shim wrote for the probe's session."""
    from harness.probes import attach_records
    from reports.usage_io import read_records
    if usage.exists():
        attach_records([res], read_records([usage])[0])
    return res.lane
