"""Unit tests mirror the package modules file by file, in both directions, at every depth.

`proxy/pipeline/relay.py` is tested in `tests/proxy/pipeline/test_relay.py`; and every
`tests/<package>/**/test_<name>.py` tests a module `<package>/**/<name>.py` that exists, so a module
that moved or went takes its test file with it.
"""
from pathlib import Path

import pytest

pytestmark = pytest.mark.quick

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("proxy", "harness", "reports")
# Modules whose behaviour is a process or a wire, proven by scenarios rather than a unit test file.
COVERED_ELSEWHERE = {
    "proxy/__main__.py": "scenarios/test_cli.py",
    "harness/pytest_plugin.py": "scenarios/repro/test_routing_lanes.py (and every scenario)",
    "harness/keys.py": "scenarios/hygiene/test_lane_credentials.py (and every scenario)",
    "harness/mock_wire.py": "tests/harness/test_mock_upstream.py",
    "harness/mock_faults.py": "tests/harness/test_mock_upstream.py",
}
# Test files that test a behaviour across modules rather than one module.
NOT_A_MIRROR = {
    "tests/proxy/core/convert/test_provider_shapes.py": "the converters on recorded provider shapes",
    "tests/proxy/core/convert/test_stream_properties.py": "property tests over the stream converters",
    "tests/proxy/upstream/test_h1_tls.py": "the own HTTP/1.1 client and the trust function over TLS",
}


def modules(package: str) -> list[Path]:
    return sorted(p for p in (ROOT / package).rglob("*.py")
                  if p.name != "__init__.py" and "__pycache__" not in p.parts)


def mirror_of(module: Path) -> Path:
    rel = module.relative_to(ROOT)
    return ROOT / "tests" / rel.parent / f"test_{rel.name}"


def test_every_module_has_a_mirror_test():
    excused = set(COVERED_ELSEWHERE)
    missing = [str(m.relative_to(ROOT)) for package in PACKAGES for m in modules(package)
               if str(m.relative_to(ROOT)) not in excused and not mirror_of(m).exists()]
    assert not missing, f"modules without tests/<path>/test_<module>.py: {missing}"


def test_every_mirror_test_has_its_module():
    orphans = []
    for package in PACKAGES:
        for test in sorted((ROOT / "tests" / package).rglob("test_*.py")):
            rel = test.relative_to(ROOT / "tests")
            module = ROOT / rel.parent / f"{test.name[len('test_'):]}"
            if str(test.relative_to(ROOT)) not in NOT_A_MIRROR and not module.exists():
                orphans.append(str(test.relative_to(ROOT)))
    assert not orphans, f"test files whose module does not exist (moved? renamed?): {orphans}"


def test_allowlists_point_at_real_files():
    for rel, where in COVERED_ELSEWHERE.items():
        assert (ROOT / rel).exists(), rel
        assert (ROOT / where.split()[0]).exists(), where
        assert not mirror_of(ROOT / rel).exists(), f"{rel} has a mirror test now: drop it here"
    for rel in NOT_A_MIRROR:
        assert (ROOT / rel).exists(), rel
