"""The operators' daily controls: `ccp up` / `ccp down` run a background shim with a pid file, refuse
a second start and a busy port, and `ccp logs` shows what went through it; `ccp shell-init` is bash.

Each test gets its own logs folder (CCP_LOGS_DIR) and `ccp up --port 0`, so nothing collides; the
fixture always runs `ccp down` (and kills the pid as a last resort), even when an assertion failed.
"""
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys

import httpx
import pytest

from harness.keys import lane_env
from harness.shim import PROJECT_ROOT, clean_env, wait_until
from proxy.config.profiles import pid_alive

pytestmark = pytest.mark.repro_go

BANNER = re.compile(r"^ccp up: http://127\.0\.0\.1:(\d+) pid (\d+) profile default logs (\S+) — "
                    r"haiku→zai \(to_zai, x-api-key\); sonnet→anthropic \(to_anth\)$")


class Ccp:
    """`python -m proxy VERB …` with one logs folder and the mock lanes."""

    def __init__(self, env):
        self.env = env

    def __call__(self, *args, timeout=40):
        return subprocess.run([sys.executable, "-m", "proxy", *args], env=clean_env(self.env),
                              cwd=PROJECT_ROOT, stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=timeout)


@pytest.fixture
def ccp(tmp_path, mock_anthropic, mock_zai):
    logs = tmp_path / "logs"
    run = Ccp({**lane_env(mock_anthropic.base_url, mock_zai.zai_base_url),
               "CCP_LOGS_DIR": str(logs)})
    run.logs = logs
    yield run
    pid_file = logs / "ccp.pid"
    pid = int(pid_file.read_text()) if pid_file.exists() else None
    run("down")
    if pid and pid_alive(pid):  # `ccp down` failed: do not leave a shim behind
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def test_up_logs_down(ccp, mock_zai, keys):
    out = ccp("up", "--port", "0")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    m = BANNER.match(lines[0])
    assert m, lines[0]
    port, pid = int(m.group(1)), int(m.group(2))
    assert m.group(3) == str(ccp.logs) and port > 0
    assert lines[1:] == [f"export ANTHROPIC_BASE_URL=http://127.0.0.1:{port}",
                         "export NO_PROXY=127.0.0.1,localhost",
                         "export CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1"]
    assert int((ccp.logs / "ccp.pid").read_text()) == pid
    assert int((ccp.logs / "ccp.port").read_text()) == port
    assert httpx.get(f"http://127.0.0.1:{port}/healthz", trust_env=False).status_code == 200

    again = ccp("up", "--port", "0")
    assert again.returncode == 1
    assert f"already running (pid {pid}) on port {port}" in again.stderr

    env = ccp("env")
    assert env.returncode == 0 and env.stdout.splitlines() == lines[1:]
    ps = ccp("ps")
    assert ps.returncode == 0 and f"running pid {pid} port {port}" in ps.stdout

    reply = httpx.post(f"http://127.0.0.1:{port}/v1/messages", trust_env=False, timeout=10,
                       headers={"x-api-key": keys["CLIENT_API_KEY"]},
                       json={"model": "claude-haiku-4-5", "max_tokens": 16,
                             "messages": [{"role": "user", "content": "Reply with exactly: hi"}]})
    assert reply.status_code == 200
    rid = reply.headers["x-ccp-request-id"]
    mock_zai.wait_for_calls(1)
    wait_until(lambda: rid in (ccp.logs / "usage.jsonl").read_text()
               if (ccp.logs / "usage.jsonl").exists() else False, 10, "the usage record")
    logs = ccp("logs", "-n", "5")
    assert logs.returncode == 0, logs.stderr
    [line] = logs.stdout.splitlines()
    assert rid in line and " zai " in line and "to_zai" in line and "200 -" in line

    down = ccp("down")
    assert down.returncode == 0 and f"stopped pid {pid}" in down.stdout
    wait_until(lambda: not pid_alive(pid), 15, f"pid {pid} to exit")
    assert not (ccp.logs / "ccp.pid").exists() and not (ccp.logs / "ccp.port").exists()
    assert ccp("ps").returncode == 1
    assert "not running" in ccp("down").stdout


def test_up_refuses_a_busy_port(ccp):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        out = ccp("up", "--port", str(port))
    assert out.returncode == 1
    assert (f"PortBusy: 127.0.0.1:{port} is in use; pick another with --port or stop what "
            f"holds it") in out.stderr
    assert not (ccp.logs / "ccp.pid").exists()


def test_restart_keeps_the_port(ccp):
    first = ccp("up", "--port", "0")
    assert first.returncode == 0, first.stderr
    port, pid = map(int, BANNER.match(first.stdout.splitlines()[0]).groups()[:2])
    again = ccp("restart")
    assert again.returncode == 0, again.stderr
    new_port, new_pid = map(int, BANNER.match(again.stdout.splitlines()[-4]).groups()[:2])
    assert new_port == port and new_pid != pid and not pid_alive(pid)


def test_shell_init_is_valid_bash(tmp_path):
    init = subprocess.run([sys.executable, "-m", "proxy", "shell-init"], env=clean_env(),
                          capture_output=True, text=True, timeout=30, cwd=PROJECT_ROOT)
    assert init.returncode == 0
    script = tmp_path / "ccp-init.bash"
    script.write_text(init.stdout)
    check = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stderr
    ccp_cmd = f"'{sys.executable}' -m proxy"
    typed = subprocess.run(["bash", "-c", f'eval "$({ccp_cmd} shell-init)"; type ccc-on; '
                            f"type ccp-haiku; declare -F"], env=clean_env(), cwd=PROJECT_ROOT,
                           capture_output=True, text=True, timeout=30)
    assert typed.returncode == 0, typed.stderr
    assert "ccc-on is a function" in typed.stdout
    for name in ("ccc-off", "ccc-status", "ccc-logs", "ccc-restart", "ccp-sonnet"):
        assert f"declare -f {name}\n" in typed.stdout


def test_a_shim_that_cannot_start_is_reported_with_its_log(ccp):
    # TEST-NET: not an address of ours, so the bind fails (the admin token: a non-loopback host
    # without one is refused before any bind, which is reported the same way, with code 2)
    ccp.env = {**ccp.env, "CCP_ADMIN_TOKEN": "t"}
    out = ccp("up", "--host", "203.0.113.7", "--port", "0")
    assert out.returncode == 1
    assert out.stderr.startswith("StartFailed: the shim exited with code 1; last lines of ")
    assert "203.0.113.7" in out.stderr
    assert not (ccp.logs / "ccp.pid").exists()
    ccp.env.pop("CCP_ADMIN_TOKEN")
    out = ccp("up", "--host", "203.0.113.7", "--port", "0")
    assert out.returncode == 1
    assert out.stderr.startswith("StartFailed: the shim exited with code 2; last lines of ")
    assert "--insecure-bind" in out.stderr and not (ccp.logs / "ccp.pid").exists()
