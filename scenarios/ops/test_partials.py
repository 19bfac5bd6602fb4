"""A broken stream leaves logs/partials/<rid>.partial with exactly what was relayed."""
import subprocess
import sys

import pytest

from harness.probes import http_probe
from harness.shim import PROJECT_ROOT, clean_env

pytestmark = [pytest.mark.sse, pytest.mark.faults]


def test_partial_holds_what_the_client_got(make_shim, mock_anthropic, mock_zai, keys):
    shim = make_shim()
    res = http_probe(shim.url, "claude-sonnet-4-5", stream=True, api_key=keys["CLIENT_API_KEY"],
                     extra_headers={"x-mock-fault": "reset_mid_stream;after=4", "x-mock-deltas": "50"})
    rec = shim.record_for(res.rid)
    assert rec["err_type"] == "net" and rec["partial"].endswith(f"partials/{res.rid}.partial")
    [call] = mock_anthropic.calls
    partial = (shim.logs_dir / "partials" / f"{res.rid}.partial").read_bytes()
    assert partial == call.sent and res.raw.startswith(partial)  # the client also got the error event
    ok = http_probe(shim.url, "claude-sonnet-4-5", stream=True, api_key=keys["CLIENT_API_KEY"])
    assert shim.record_for(ok.rid)["partial"] is None
    env = clean_env({"CCP_LOGS_DIR": str(shim.logs_dir)})
    listed = subprocess.run([sys.executable, "-m", "proxy", "partials"], cwd=PROJECT_ROOT, env=env,
                            capture_output=True, text=True, timeout=30)
    assert listed.returncode == 0 and res.rid in listed.stdout
    cleaned = subprocess.run([sys.executable, "-m", "proxy", "partials", "clean"], cwd=PROJECT_ROOT, env=env,
                             capture_output=True, text=True, timeout=30)
    assert cleaned.returncode == 0 and not list((shim.logs_dir / "partials").glob("*.partial"))
