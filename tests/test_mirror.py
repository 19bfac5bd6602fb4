"""Unit tests mirror the package modules file by file; this keeps the mirror honest."""
from pathlib import Path

import pytest

pytestmark = pytest.mark.quick

ROOT = Path(__file__).resolve().parent.parent
# Modules whose behaviour is a process or a wire, proven by scenarios rather than a unit test file.
COVERED_ELSEWHERE = {
    "proxy/__main__.py": "scenarios/test_cli.py",
    "proxy/server.py": "scenarios/test_cli.py (port announcement, signals)",
    "proxy/relay.py": "tests/proxy/test_app.py and scenarios/sse",
    "proxy/app.py": "tests/proxy/test_app.py",
    "harness/pytest_plugin.py": "scenarios/repro/test_routing_lanes.py (and every scenario)",
    "harness/keys.py": "scenarios/hygiene/test_lane_credentials.py (and every scenario)",
    "harness/mock_wire.py": "tests/harness/test_mock_upstream.py",
    "harness/mock_faults.py": "tests/harness/test_mock_upstream.py",
}


def test_every_module_has_a_mirror_test():
    missing = []
    for package in ("proxy", "harness", "reports"):
        for module in sorted((ROOT / package).glob("*.py")):
            rel = f"{package}/{module.name}"
            if module.name == "__init__.py" or rel in COVERED_ELSEWHERE:
                continue
            if not (ROOT / "tests" / package / f"test_{module.name}").exists():
                missing.append(rel)
    assert not missing, f"modules without tests/<package>/test_<module>.py: {missing}"


def test_allowlist_points_at_real_files():
    for rel, where in COVERED_ELSEWHERE.items():
        assert (ROOT / rel).exists(), rel
        assert (ROOT / where.split()[0]).exists(), where
