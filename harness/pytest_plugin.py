"""pytest fixtures for ccp scenarios: hermetic env, session mock upstreams, and `make_shim`.

- every test starts without proxy/provider variables, with its own CCP_HOME (autouse);
- `mock_anthropic` / `mock_zai` are session-scoped mock upstreams, reset before each test that uses
  them, and strict: a test that leaves an unexpected call behind fails;
- `make_shim(env=..., lanes=True, wait=None)` starts the real `ccp serve` process on a free port with its own
  logs folder, pointed at the mocks with the fake lane credentials, and stops it after the test;
- `tls_mocks` is the same pair over TLS, and `make_front(front, env)` starts either front door —
  `ccp serve` ("shim") or `ccp mitm` ("mitm", HTTPS_PROXY mode) — pointed at them, returning a `Front`
  whose `base_url` / `via` are what a client uses, so one scenario table runs through both.
"""
from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import NamedTuple

import pytest

from harness.keys import lane_env, test_keys
from harness.mock_upstream import MockUpstream
from harness.shim import _STRIPPED, _STRIPPED_PREFIXES, HttpsProxy, ShimProcess, front_process
from proxy.core.parse import truthy


@pytest.fixture(autouse=True)
def _hermetic_env(monkeypatch, tmp_path_factory):
    for key in list(os.environ):
        if key in _STRIPPED or key.startswith(_STRIPPED_PREFIXES):
            monkeypatch.delenv(key, raising=False)
    # the ccp home (proxy.config.home): a test's load_settings() never reaches the checkout's logs/
    monkeypatch.setenv("CCP_HOME", str(tmp_path_factory.mktemp("ccp-home")))


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


@pytest.fixture(scope="session")
def _tls_mock_pair(tmp_path_factory):
    anthropic, zai = MockUpstream("anthropic", tls=True), MockUpstream("zai", tls=True)
    anthropic.start()
    zai.start()
    bundle = tmp_path_factory.mktemp("tls-mocks") / "mock-cas.pem"
    bundle.write_text(Path(anthropic.ca_path).read_text() + Path(zai.ca_path).read_text())
    yield anthropic, zai, str(bundle)
    anthropic.stop()
    zai.stop()


@pytest.fixture
def tls_mocks(_tls_mock_pair):
    """(anthropic, zai) mock upstreams over TLS; `ca_bundle` in `make_front` trusts both."""
    anthropic, zai, _ = _tls_mock_pair
    for mock in (anthropic, zai):
        mock.reset()
    yield anthropic, zai
    for mock in (anthropic, zai):
        mock.assert_no_unexpected()


class Front(NamedTuple):
    """A started front door and how a client reaches the Anthropic API through it."""

    name: str  # "shim" or "mitm"
    proc: ShimProcess
    base_url: str  # the shim's URL, or https://api.anthropic.com for the mitm
    via: HttpsProxy | None  # the proxy a client goes through (mitm only)


@pytest.fixture
def make_front(tmp_path, tls_mocks, _tls_mock_pair):
    """Factory: `make_front("shim" | "mitm", env={...}) -> Front` (started; stopped after the test)."""
    started: list[ShimProcess] = []
    counter = itertools.count()
    anthropic, zai = tls_mocks

    def factory(front: str, env: dict[str, str] | None = None) -> Front:
        overlay = {**lane_env(anthropic.base_url, zai.zai_base_url),
                   "CCP_CA_BUNDLE": _tls_mock_pair[2], **(env or {})}
        proc = front_process(front, tmp_path / f"{front}{next(counter)}", overlay)
        started.append(proc)
        proc.start()
        return Front(front, proc, proc.client_url, proc.via)

    yield factory
    for proc in started:
        proc.stop()


def pytest_collection_modifyitems(config, items):
    """`real_api` scenarios need real keys and are skipped unless ALLOW_REAL_API=1."""
    if truthy(os.environ.get("ALLOW_REAL_API")):
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


# ---------------------------------------------------------------- PostgreSQL (harness.postgres)
@pytest.fixture(scope="session")
def pg_server():
    """One real PostgreSQL server for the session (skips with one line when not installed)."""
    from harness.postgres import SKIP_REASON, PostgresServer, find_bin_dir
    if find_bin_dir() is None:
        pytest.skip(SKIP_REASON)
    server = PostgresServer().start()
    yield server
    server.close()


@pytest.fixture
def pg_url(pg_server, request):
    """A fresh database on the session's server; its URL."""
    name = "t_" + "".join(c if c.isalnum() else "_" for c in request.node.name.lower())[:50]
    return pg_server.database(f"{name}_{next(_pg_dbs)}")


_pg_dbs = itertools.count()


@pytest.fixture
def make_postgres():
    """Factory: a server of the test's own (for tests that stop and start it); closed after."""
    from harness.postgres import SKIP_REASON, PostgresServer, find_bin_dir
    if find_bin_dir() is None:
        pytest.skip(SKIP_REASON)
    servers: list = []

    def factory():
        server = PostgresServer()
        servers.append(server)
        return server.start()

    yield factory
    for server in servers:
        server.close()
