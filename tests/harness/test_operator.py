"""harness.operator: the environment an operator's commands run with."""
import os

import pytest

from harness.operator import VENV_BIN, Operator

pytestmark = pytest.mark.quick


def test_commands_run_with_the_home_the_venv_and_no_proxy_variables(tmp_path, monkeypatch):
    monkeypatch.setenv("CCP_LOGS_DIR", "/daily")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid")
    env = Operator(tmp_path, {"ZAI_API_KEY": "z"}).environ(CCP_PROFILE="dev")
    assert env["CCP_HOME"] == str(tmp_path) and env["CCP_PROFILE"] == "dev"
    assert env["ZAI_API_KEY"] == "z" and "CCP_LOGS_DIR" not in env and "HTTPS_PROXY" not in env
    assert env["PATH"].split(os.pathsep)[0] == str(VENV_BIN)
    assert (VENV_BIN / "ccp").exists()
