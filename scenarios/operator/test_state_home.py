"""State that follows the operator: `ccp up` in one folder, then `ccp ps`, `ccp env`, `ccp logs`,
`ccp down` and `ccc-off` typed in another folder all act on that shim, and no folder but the ccp home
gets a `logs/`."""
from __future__ import annotations

import os
import re

import pytest

from proxy.config.profiles import pid_alive
from scenarios.operator.conftest import send

pytestmark = pytest.mark.operator

UP = re.compile(r"^ccp up: http://127\.0\.0\.1:(\d+) pid (\d+) profile (\S+) logs (\S+)")


def start(op, *args):
    out = op.ccp("up", "--port", "0", *args, cwd=op.a)
    assert out.returncode == 0, out.stderr
    m = UP.match(out.stdout.splitlines()[0])
    assert m, out.stdout
    return int(m.group(1)), int(m.group(2)), m.group(4)


def test_up_in_one_folder_is_seen_and_stopped_from_another(op, keys, mock_zai):
    port, pid, logs = start(op)
    assert logs == str(op.home / "logs")

    ps = op.ccp("ps", cwd=op.b)
    assert ps.returncode == 0, ps.stdout
    assert f"running pid {pid} port {port}" in ps.stdout and f"home {op.home} (CCP_HOME)" in ps.stdout
    env = op.ccp("env", cwd=op.b)
    assert f"export ANTHROPIC_BASE_URL=http://127.0.0.1:{port}" in env.stdout

    assert send(port, "claude-haiku-4-5", keys["CLIENT_API_KEY"], "from folder a").status_code == 200
    shown = op.ccp("logs", "-n", "1", "--raw", cwd=op.b)
    assert shown.returncode == 0 and '"lane":"zai"' in shown.stdout.replace(" ", "")
    assert len(mock_zai.calls) == 1

    off = op.shell("ccc-off", cwd=op.b)
    assert off.returncode == 0, off.stderr
    assert f"stopped pid {pid}" in off.stdout and not pid_alive(pid)
    assert op.ccp("ps", cwd=op.a).returncode == 1
    # the folders the operator typed in hold nothing; the state is all under the home
    assert list(op.a.iterdir()) == [] and list(op.b.iterdir()) == []
    assert (op.home / "logs" / "usage.jsonl").exists()


def test_doctor_names_the_home_from_any_folder(op):
    for folder in (op.a, op.b):
        out = op.ccp("doctor", cwd=folder)
        assert f"{op.home} (CCP_HOME)" in out.stdout, out.stdout
        assert str(op.home / "logs" / "ccp.sqlite3") in out.stdout


def test_a_profile_keeps_its_own_run_files_under_the_same_home(op):
    out = op.ccp("up", "--port", "0", cwd=op.a, env={"CCP_PROFILE": "dev"})
    assert out.returncode == 0, out.stderr
    m = UP.match(out.stdout.splitlines()[0])
    assert m and m.group(3) == "dev" and m.group(4) == str(op.home / "logs" / "dev")
    assert op.ccp("ps", cwd=op.b).returncode == 1  # the default profile is not running
    ps = op.ccp("ps", cwd=op.b, env={"CCP_PROFILE": "dev"})
    assert ps.returncode == 0 and f"running pid {m.group(2)}" in ps.stdout
    down = op.ccp("down", cwd=op.b, env={"CCP_PROFILE": "dev"})
    assert f"stopped pid {m.group(2)}" in down.stdout


def test_ps_names_a_shim_on_the_profiles_port_that_another_home_started(op, tmp_path):
    """Peers' pitfall (a pid file gone while the server still listens, so `status` says "not
    running"): `ccp ps` says that something answers on the port."""
    from proxy.config.profiles import custom_port
    profile = f"ps{os.getpid()}"
    out = op.ccp("up", env={"CCP_PROFILE": profile})
    assert out.returncode == 0, out.stderr
    other = tmp_path / "other-home"
    other.mkdir()
    ps = op.ccp("ps", env={"CCP_PROFILE": profile, "CCP_HOME": str(other)})
    assert ps.returncode == 1
    assert f"not running from this home, but a shim answers on port {custom_port(profile)}" \
        in ps.stdout
    assert op.ccp("down", env={"CCP_PROFILE": profile}).returncode == 0
