"""The shell functions as the operators type them (`eval "$(ccp shell-init)"` in bash and zsh):
`ccc-on PORT` starts the shim on that port and points the shell at it, `ccc-restart PORT` moves it,
`ccc-off` stops it and puts back every variable `ccc-on` set (a value the shell had, or unset), and
`ccp-haiku` / `ccp-sonnet` run the real claude CLI through it to the lane each belongs on."""
from __future__ import annotations

import shutil
import socket

import pytest

pytestmark = pytest.mark.operator

SHELLS = [pytest.param(name, marks=pytest.mark.skipif(not shutil.which(name),
                                                       reason=f"{name} is not installed"))
          for name in ("bash", "zsh")]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def in_shell(op, shell: str, script: str, **kw):
    return op.run([shell, "-c", 'eval "$(ccp shell-init --shell ' + shell + ')"\n' + script], **kw)


@pytest.mark.parametrize("shell", SHELLS)
def test_ccc_on_port_restart_port_and_off_restore_the_shell(op, shell):
    first, second = free_port(), free_port()
    script = f"""
export NO_PROXY=corp.internal
unset ANTHROPIC_BASE_URL CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC
ccc-on {first} 2>/dev/null || exit 9
echo "on:$ANTHROPIC_BASE_URL|$NO_PROXY|$CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"
ccc-on 2>/dev/null
echo "again:$ANTHROPIC_BASE_URL"
ccc-restart {second} 2>/dev/null || exit 8
echo "restart:$ANTHROPIC_BASE_URL"
ccp ps -q && echo "ps:running"
ccc-off
echo "off:${{ANTHROPIC_BASE_URL-<unset>}}|${{NO_PROXY-<unset>}}|${{CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC-<unset>}}"
ccp ps -q || echo "ps:stopped"
"""
    out = in_shell(op, shell, script, cwd=op.b, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = [ln for ln in out.stdout.splitlines() if ":" in ln and ln.split(":")[0] in
             ("on", "again", "restart", "ps", "off")]
    assert lines == [
        f"on:http://127.0.0.1:{first}|127.0.0.1,localhost|1",
        f"again:http://127.0.0.1:{first}",  # already running: the same shim, nothing restarted
        f"restart:http://127.0.0.1:{second}",
        "ps:running",
        "off:<unset>|corp.internal|<unset>",
        "ps:stopped",
    ], out.stdout


def test_ccc_on_prints_the_fuel_gauge_and_ccc_off_without_on_unsets_the_base_url(op):
    port = free_port()
    out = in_shell(op, "bash", f"ccc-on {port} >/dev/null; ccc-off >/dev/null", timeout=60)
    assert out.returncode == 0, out.stderr
    assert f"ccp up: http://127.0.0.1:{port}" in out.stderr  # the banner, on stderr
    last = out.stderr.splitlines()[-1]  # `ccp usage --banner`: the one-line fuel gauge, last
    assert last.startswith("ccp ") and not last.startswith("ccp up:"), out.stderr
    alone = in_shell(op, "bash", "export ANTHROPIC_BASE_URL=http://x; ccc-off; "
                     'echo "left:${ANTHROPIC_BASE_URL-<unset>}"', timeout=60)
    assert "left:<unset>" in alone.stdout and "not running" in alone.stdout


def test_ccp_haiku_and_ccp_sonnet_go_to_their_lanes_through_the_real_cli(op, claude_bin, mock_zai,
                                                                           mock_anthropic):
    script = "ccc-on 0 >/dev/null 2>&1 || exit 9\nccp-haiku Say hi from haiku\nccp-sonnet\nccc-off"
    out = in_shell(op, "bash", script, cwd=op.b, timeout=240)
    assert out.returncode == 0, out.stdout + out.stderr
    probe_lines = [ln for ln in out.stdout.splitlines() if ln.startswith(("ok ", "FAIL "))]
    assert [ln.split()[:3] for ln in probe_lines] == [["ok", "haiku", "zai"],
                                                        ["ok", "sonnet", "anthropic"]], out.stdout
    said = [str(c.json.get("messages")) for c in mock_zai.calls if c.json]
    assert any("Say hi from haiku" in m for m in said)
    assert any("Say hi" in str(c.json.get("messages")) for c in mock_anthropic.calls if c.json)
