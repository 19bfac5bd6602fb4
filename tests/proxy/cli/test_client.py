"""How a verb reaches the running shim (proxy.cli.client): its URL from the profile's port file when
the pid file names a live `serve`, else the profile's port; and the admin credential it carries."""
import subprocess
import sys

import pytest

from proxy.cli.client import admin_headers, shim_url
from proxy.config.settings import Settings
from proxy.core.redact import Secret

quick = pytest.mark.quick  # (the tests with a child process are not `quick`: no subprocess there)


@pytest.fixture
def settings(tmp_path):
    return Settings(logs_dir=str(tmp_path), default_port=18180)


def _waiting(*argv: str) -> subprocess.Popen:
    """A live process that waits on its stdin (it ends when the test closes it)."""
    return subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()", *argv],
                            stdin=subprocess.PIPE)


@pytest.fixture
def serve_process():
    """A live process whose command line holds `serve`, as a background shim's does."""
    proc = _waiting("serve")
    yield proc
    proc.stdin.close()
    proc.wait(10)


@quick
def test_a_url_given_wins_without_its_trailing_slash(settings, tmp_path):
    (tmp_path / "ccp.port").write_text("9999\n")
    assert shim_url(settings, "http://127.0.0.1:7000/") == "http://127.0.0.1:7000"


@quick
def test_without_a_running_shim_it_is_the_profiles_port(settings):
    assert shim_url(settings) == "http://127.0.0.1:18180"


def test_the_running_shims_port_file_gives_the_port(settings, tmp_path, serve_process):
    (tmp_path / "ccp.pid").write_text(f"{serve_process.pid}\n")
    (tmp_path / "ccp.port").write_text("18555\n")
    assert shim_url(settings) == "http://127.0.0.1:18555"
    (tmp_path / "ccp.port").write_text("not a port\n")
    assert shim_url(settings) == "http://127.0.0.1:18180"


def test_a_stale_or_recycled_pid_does_not_count(settings, tmp_path):
    (tmp_path / "ccp.port").write_text("18555\n")
    gone = subprocess.Popen([sys.executable, "-c", "pass", "serve"])
    gone.wait(10)
    (tmp_path / "ccp.pid").write_text(f"{gone.pid}\n")  # exited: stale
    assert shim_url(settings) == "http://127.0.0.1:18180"
    other = _waiting()
    try:
        (tmp_path / "ccp.pid").write_text(f"{other.pid}\n")  # alive, but not a `serve`
        assert shim_url(settings) == "http://127.0.0.1:18180"
    finally:
        other.stdin.close()
        other.wait(10)


@quick
def test_admin_headers_carry_the_token_as_a_bearer_or_nothing():
    assert admin_headers(Settings(admin_token=Secret("tok-123"))) == {"authorization": "Bearer tok-123"}
    assert admin_headers(Settings()) == {}
