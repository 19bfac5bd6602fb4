"""Clear answers to the usual mistakes, one screen and no traceback: a busy port for `ccp serve` and
`ccp mitm`, a zai lane without ZAI_API_KEY (banner, start-up warning, /readyz), and claude run
against the shim with no credential at all (`ccp env` says what to set)."""
from __future__ import annotations

import importlib.util
import re
import socket
import subprocess

import httpx
import pytest

pytestmark = pytest.mark.operator


@pytest.fixture
def busy_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield sock.getsockname()[1]


def one_clear_line(out: subprocess.CompletedProcess, kind: str) -> str:
    assert out.returncode == 1, out.stdout + out.stderr
    assert "Traceback" not in out.stderr and out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{kind}: "), out.stderr
    return lines[0]


def test_serve_on_a_busy_port_says_so(op, busy_port):
    line = one_clear_line(op.ccp("serve", "--port", str(busy_port), timeout=30), "PortBusy")
    assert f"127.0.0.1:{busy_port} is in use" in line


@pytest.mark.skipif(importlib.util.find_spec("mitmproxy") is None, reason="mitmproxy not installed")
def test_mitm_on_a_busy_port_says_so_also_from_mitm_port(op, busy_port):
    line = one_clear_line(op.ccp("mitm", "--port", str(busy_port), timeout=30), "PortBusy")
    assert f"127.0.0.1:{busy_port} is in use" in line and "MITM_PORT" in line
    via_env = op.ccp("mitm", env={"MITM_PORT": str(busy_port)}, timeout=30)
    assert f"127.0.0.1:{busy_port} is in use" in one_clear_line(via_env, "PortBusy")


def test_a_zai_lane_without_its_key_is_named_at_start_in_readyz_and_in_the_banner(op, keys, mock_zai):
    out = op.ccp("up", "--port", "0", env={"ZAI_API_KEY": ""})
    assert out.returncode == 0, out.stderr
    banner = out.stdout.splitlines()[0]
    assert "haiku→zai (to_zai, x-api-key, NO CREDENTIAL: ZAI_API_KEY is not set, zai will answer " \
           "401); sonnet→anthropic (to_anth)" in banner
    port = int(re.match(r"^ccp up: http://127\.0\.0\.1:(\d+)", banner).group(1))
    ready = httpx.get(f"http://127.0.0.1:{port}/readyz", trust_env=False, timeout=10).json()
    assert ready["providers"]["zai"]["credential"] is False
    assert ready["providers"]["zai"]["problem"] == "no credential: ZAI_API_KEY is not set"
    assert ready["providers"]["anthropic"]["credential"] is True
    log = (op.home / "logs" / "ccp-serve.log").read_text()
    assert "WARNING [ccp] haiku turns go to the zai lane, which has no credential: ZAI_API_KEY " \
           "is not set" in log
    assert op.ccp("down").returncode == 0
    assert mock_zai.calls == []  # nothing was sent to find it out


def test_ccp_env_says_what_to_set_when_claude_has_no_credential(op, tmp_path, claude_bin,
                                                                mock_anthropic):
    bare_home = tmp_path / "bare-home"
    bare_home.mkdir()
    up = op.ccp("up", "--port", "0")
    assert up.returncode == 0, up.stderr
    shell = {"HOME": str(bare_home), "ANTHROPIC_AUTH_TOKEN": ""}  # the shim keeps its own token
    env = op.ccp("env", env=shell)
    assert env.returncode == 0 and env.stdout.startswith("export ANTHROPIC_BASE_URL=")
    assert "claude has no credential in this shell" in env.stderr
    assert "Set ANTHROPIC_API_KEY=" in env.stderr
    # what it warns of: the real CLI stops before it sends anything
    base = env.stdout.splitlines()[0].split("=", 1)[1]
    run = op.run([claude_bin, "-p", "Say hi", "--output-format", "json"], cwd=bare_home,
                 env={**shell, "ANTHROPIC_BASE_URL": base}, timeout=90)
    assert run.returncode != 0 and "Not logged in" in run.stdout + run.stderr
    assert mock_anthropic.calls == []
    # with a key in the shell there is nothing to say
    keyed = op.ccp("env", env={**shell, "ANTHROPIC_API_KEY": "sk-ant-test"})
    assert keyed.stderr == ""
