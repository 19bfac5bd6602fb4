"""What each of ccp's per-request features costs: the shim with some of them switched off.

`python -m harness.bench.ablate store,log serve --port 0` runs `ccp serve` with the named features
taken out, for the bench only (`ccp bench --ablate` adds one target per feature and one with all of
them off). None of these is a setting an operator has; each swaps out the one function that does the
work, so the difference to the full shim is that feature's cost under the same load:

- `store`: no SQLite usage store (the same as `CCP_PERSIST=0`);
- `log`: the usage line is encoded but not written to `usage.jsonl` (no `stat`, no `write`);
- `validate`: the body is not parsed; `model` and `stream` are read from it by a scan, so invalid
  JSON goes upstream as it came (the shim answers it with a 400 otherwise);
- `metrics`: the Prometheus series are not fed.
"""
from __future__ import annotations

import os
import re
import sys

FEATURES = ("store", "log", "validate", "metrics")

_FIELD = re.compile(rb'"(model|stream)"\s*:\s*("(?:[^"\\]|\\.)*"|true|false)')


def scan_route_fields(body: bytes) -> tuple[dict, bool]:
    """`model` and `stream` by a regular-expression scan (the `validate` ablation's `_read_json`):
    no validation at all, and not even sure to find the top-level fields of an odd body."""
    found: dict = {}
    for name, value in _FIELD.findall(body):
        key = name.decode()
        if key not in found:
            found[key] = value[1:-1].decode() if value.startswith(b'"') else value == b"true"
    if "model" not in found:
        raise ValueError("no model found by the scan")
    return found, False


def switch_off(features: list[str]) -> None:
    """Replace the functions behind `features` in this process (before the shim starts)."""
    unknown = sorted(set(features) - set(FEATURES))
    if unknown:
        raise SystemExit(f"unknown feature(s) {','.join(unknown)}; known: {','.join(FEATURES)}")
    if "store" in features:
        os.environ["CCP_PERSIST"] = "0"
    if "log" in features:
        from proxy.sinks import usage_log as usage
        usage.UsageWriter.write = lambda self, record: usage.record_line(record)
    if "validate" in features:
        from proxy.core import payload as exchange
        exchange.route_fields = lambda body: None  # so every body goes to the reading below
        exchange._read_json = scan_route_fields  # (a body the scan finds no model in: a 400)
    if "metrics" in features:
        from proxy.sinks.metrics import Metrics
        Metrics.observe = lambda self, record: None


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        raise SystemExit("usage: python -m harness.bench.ablate FEATURE[,FEATURE…] CCP-ARGS…")
    switch_off([f for f in argv[0].split(",") if f])
    from proxy.cli.main import main as ccp_main
    return ccp_main(argv[1:])


if __name__ == "__main__":
    raise SystemExit(main())
