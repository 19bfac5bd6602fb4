"""The repro job against the real upstreams: only with ALLOW_REAL_API=1 and real keys."""
import os
import subprocess
import sys

import pytest

from harness.shim import PROJECT_ROOT

pytestmark = [pytest.mark.real_api, pytest.mark.repro]

KEYS = ("ZAI_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_API_KEY")


@pytest.mark.parametrize("args", [["--rounds", "1"], ["--quick"]], ids=["repro", "quick"])
def test_repro_on_real_upstreams(tmp_path, args):
    # the hermetic fixture strips provider keys from os.environ; read them from the session's start
    env = dict(_REAL_ENV, CCP_LOGS_DIR=str(tmp_path / "logs"), CCP_RESULTS_DIR=str(tmp_path / "r"),
               ALLOW_REAL_API="1")
    if not env.get("ZAI_API_KEY") or not (env.get("ANTHROPIC_AUTH_TOKEN") or env.get("ANTHROPIC_API_KEY")):
        pytest.skip("real_api: ZAI_API_KEY and an Anthropic credential are needed")
    out = subprocess.run([sys.executable, "-m", "proxy", "repro", *args], env=env,
                         cwd=PROJECT_ROOT, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "upstreams: REAL" in out.stdout


_REAL_ENV = dict(os.environ)
