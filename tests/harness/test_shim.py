import pytest

from harness.shim import ShimProcess, clean_env, wait_until

pytestmark = pytest.mark.quick


def test_clean_env_strips_provider_and_proxy_variables():
    base = {"PATH": "/bin", "ANTHROPIC_API_KEY": "x", "CCP_MODEL": "y", "ZAI_API_KEY": "z",
            "HTTPS_PROXY": "http://p", "FORCE_HAIKU_TO_ZAI": "0", "CLAUDE_CODE_X": "1", "HOME": "/h"}
    env = clean_env({"CCP_LOGS_DIR": "/l"}, base=base)
    assert env["PATH"] == "/bin" and env["HOME"] == "/h" and env["CCP_LOGS_DIR"] == "/l"
    for gone in ("ANTHROPIC_API_KEY", "CCP_MODEL", "ZAI_API_KEY", "HTTPS_PROXY", "FORCE_HAIKU_TO_ZAI",
                 "CLAUDE_CODE_X"):
        assert gone not in env
    assert env["NO_PROXY"] == "127.0.0.1,localhost"


def test_wait_until_returns_value_or_times_out():
    values = iter([0, 0, 7])
    assert wait_until(lambda: next(values), 5, "a value", interval=0.001) == 7
    with pytest.raises(TimeoutError, match="nothing"):
        wait_until(lambda: None, 0.01, "nothing", interval=0.001)


def test_front_process_picks_the_front_door(tmp_path):
    from harness.shim import MitmProcess, front_process
    shim = front_process("shim", tmp_path / "s")
    assert type(shim) is ShimProcess and shim.via is None and shim.ready_path == "/healthz"
    mitm = front_process("mitm", tmp_path / "m")
    assert isinstance(mitm, MitmProcess) and mitm.client_url == "https://api.anthropic.com"
    mitm.port, mitm.announce = 8082, {"ca_cert": "/ca.pem", "admin_port": 9}
    assert tuple(mitm.via) == ("http://127.0.0.1:8082", "/ca.pem")
    assert mitm.ready_url == "http://127.0.0.1:9/healthz"


def test_run_env_drops_what_points_at_the_daily_state():
    from harness.shim import run_env
    base = {"CCP_HOME": "/h", "CCP_LOGS_DIR": "/l", "CCP_DB_PATH": "/d", "ZAI_API_KEY": "z",
            "CCP_QUOTAS_FILE": "/q"}
    assert run_env(base) == {"ZAI_API_KEY": "z", "CCP_QUOTAS_FILE": "/q"}


def test_run_folder_is_under_results_runs_and_starts_empty(tmp_path):
    from harness.shim import run_folder
    folder = run_folder(tmp_path, "soak", "night")
    assert folder == tmp_path / "runs" / "soak" / "night" and folder.is_dir()
    (folder / "usage.jsonl").write_text("{}\n")
    assert list(run_folder(tmp_path, "soak", "night").iterdir()) == []
    (folder / "keep").write_text("x")
    assert (run_folder(tmp_path, "soak", "night", fresh=False) / "keep").exists()

