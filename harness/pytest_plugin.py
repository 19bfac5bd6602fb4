"""pytest fixtures for ccp scenarios: hermetic env, session mock upstreams, and `make_shim`.

- every test starts without proxy/provider variables (autouse);
- `mock_anthropic` / `mock_zai` are session-scoped mock upstreams, reset before each test that uses
  them, and strict: a test that leaves an unexpected call behind fails;
- `make_shim(env=..., lanes=True, wait=None)` starts the real `ccp serve` process on a free port with its own
  logs folder, pointed at the mocks with the fake lane credentials, and stops it after the test.
"""
from __future__ import annotations

import itertools
import os

import pytest

from harness.keys import lane_env, test_keys
from harness.mock_upstream import MockUpstream
from harness.shim import ShimProcess, _STRIPPED, _STRIPPED_PREFIXES


@pytest.fixture(autouse=True)
def _hermetic_env(monkeypatch):
    for key in list(os.environ):
        if key in _STRIPPED or key.startswith(_STRIPPED_PREFIXES):
            monkeypatch.delenv(key, raising=False)


@pytest.fixture(scope="session")
def _mock_pair():
    anthropic, zai = MockUpstream("anthropic"), MockUpstream("zai")
    anthropic.start()
    zai.start()
    yield anthropic, zai
    anthropic.stop()
    zai.stop()


@pytest.fixture
def mock_anthropic(_mock_pair):
    mock = _mock_pair[0]
    mock.reset()
    yield mock
    mock.assert_no_unexpected()


@pytest.fixture
def mock_zai(_mock_pair):
    mock = _mock_pair[1]
    mock.reset()
    yield mock
    mock.assert_no_unexpected()


@pytest.fixture
def keys() -> dict[str, str]:
    return test_keys()


@pytest.fixture
def make_shim(tmp_path, mock_anthropic, mock_zai):
    """Factory: `make_shim(env={...}) -> ShimProcess` (started; stopped after the test)."""
    started: list[ShimProcess] = []
    counter = itertools.count()

    def factory(env: dict[str, str] | None = None, lanes: bool = True,
                wait: str | None = None) -> ShimProcess:
        overlay = lane_env(mock_anthropic.base_url, mock_zai.zai_base_url) if lanes else {}
        overlay.update(env or {})
        # with the mock lanes, wait for /readyz: the shim is up and both mocks answer its probes
        shim = ShimProcess(tmp_path / f"shim{next(counter)}", overlay,
                           ready_path=wait or ("/readyz" if lanes else "/healthz"))
        started.append(shim)
        return shim.start()

    yield factory
    for shim in started:
        shim.stop()


def pytest_collection_modifyitems(config, items):
    """`real_api` scenarios need real keys and are skipped unless ALLOW_REAL_API=1."""
    if os.environ.get("ALLOW_REAL_API", "").strip().lower() in ("1", "true", "yes", "on"):
        return
    skip = pytest.mark.skip(reason="real_api: set ALLOW_REAL_API=1 (and real keys) to run")
    for item in items:
        if "real_api" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def claude_bin() -> str:
    """The real `claude` CLI (project install or PATH); scenarios that need it skip without it."""
    from harness.cli_probe import claude_version, find_claude
    binary = find_claude()
    if not binary or not claude_version(binary):
        pytest.skip("the claude CLI is not installed: run `make claude` (npm) to enable CLI scenarios")
    return binary
