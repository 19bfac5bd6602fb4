"""The `ccp` command line: verbs, exit codes, and the port announcement of `ccp serve --port 0`."""
import json
import subprocess
import sys

import pytest

from harness.shim import PROJECT_ROOT, clean_env

pytestmark = pytest.mark.repro_go


def ccp(*args, env=None, timeout=30):
    return subprocess.run([sys.executable, "-m", "proxy", *args], env=clean_env(env), cwd=PROJECT_ROOT,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)


def test_help_lists_the_verbs():
    out = ccp("--help")
    assert out.returncode == 0
    for verb in ("serve", "mock-upstream", "summarize", "verify-routing", "gates", "repro"):
        assert verb in out.stdout


def test_unknown_verb_is_a_usage_error():
    out = ccp("frobnicate")
    assert out.returncode == 2 and "UsageError" in out.stderr


def test_bad_setting_fails_at_start_naming_the_key():
    out = ccp("serve", "--port", "0", env={"CCP_MAX_BODY_BYTES": "huge"})
    assert out.returncode == 2
    assert "ConfigError: CCP_MAX_BODY_BYTES='huge'" in out.stderr
    assert "Traceback" not in out.stderr


def test_serve_announces_port_and_never_logs_secrets(make_shim, keys):
    shim = make_shim({"ANTHROPIC_API_KEY": keys["ANTHROPIC_API_KEY"]})
    shim.stop()
    log = shim.stderr_path.read_text()
    assert f":{shim.port}" in log and "lanes anthropic=" in log
    for secret in (keys["ZAI_API_KEY"], keys["ANTHROPIC_AUTH_TOKEN"], keys["ANTHROPIC_API_KEY"]):
        assert secret not in log


def test_port_file(tmp_path):
    port_file = tmp_path / "port"
    proc = subprocess.Popen([sys.executable, "-m", "proxy", "serve", "--port", "0", "--port-file",
                             str(port_file)], env=clean_env({"CCP_LOGS_DIR": str(tmp_path)}),
                            cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL)
    try:
        announce = json.loads(proc.stdout.readline())
        assert announce["event"] == "listening" and announce["port"] > 0
        assert int(port_file.read_text()) == announce["port"]
    finally:
        proc.terminate()
        assert proc.wait(10) == 0
        proc.stdout.close()
