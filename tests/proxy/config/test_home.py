"""proxy.config.home: the state folder is found the same way from any working directory."""
from __future__ import annotations

from pathlib import Path

from proxy.config.home import (
    PACKAGE_DIR,
    checkout_root,
    resolve_home,
    state_home,
    under,
)
from proxy.config.load import load_settings


def test_ccp_home_wins_and_is_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_home({"CCP_HOME": "state"}) == (tmp_path / "state", "CCP_HOME")
    assert resolve_home({"CCP_HOME": "~/x", "HOME": str(tmp_path)})[0] == Path("~/x").expanduser()


def test_this_checkout_is_the_home_whatever_the_working_directory(tmp_path, monkeypatch):
    root = PACKAGE_DIR.parent
    assert checkout_root() == root
    monkeypatch.chdir(tmp_path)
    assert resolve_home({}) == (root, "checkout")


def test_a_package_outside_a_checkout_uses_the_xdg_state_folder(tmp_path):
    site = tmp_path / "site-packages" / "proxy"
    site.mkdir(parents=True)
    assert checkout_root(site) is None
    (tmp_path / "site-packages" / "pyproject.toml").write_text('[project]\nname = "other"\n')
    (tmp_path / "site-packages" / "Makefile").write_text("")
    (tmp_path / "site-packages" / "harness").mkdir()
    assert checkout_root(site) is None  # another project's checkout is not ours
    assert state_home({"XDG_STATE_HOME": str(tmp_path / "xdg")}) == tmp_path / "xdg" / "ccp"
    assert state_home({"HOME": str(tmp_path)}) == tmp_path / ".local" / "state" / "ccp"
    assert state_home({"XDG_STATE_HOME": "relative", "HOME": str(tmp_path)}) == \
        tmp_path / ".local" / "state" / "ccp"  # the XDG spec ignores relative paths


def test_relative_paths_are_taken_from_the_home(tmp_path):
    assert under(tmp_path, "logs/dev") == str(tmp_path / "logs" / "dev")
    assert under(tmp_path, "/abs") == "/abs"


def test_settings_put_logs_results_and_store_under_the_home(tmp_path, monkeypatch):
    monkeypatch.chdir("/")
    s = load_settings({"CCP_HOME": str(tmp_path), "CCP_PROFILE": "dev",
                           "CCP_RESULTS_DIR": "out"})
    assert (s.home, s.home_source) == (str(tmp_path), "CCP_HOME")
    assert s.logs_dir == str(tmp_path / "logs" / "dev")
    assert s.results_dir == str(tmp_path / "out")
    assert s.db_file == str(tmp_path / "logs" / "dev" / "ccp.sqlite3")
    # the same settings from another folder
    monkeypatch.chdir(tmp_path)
    again = load_settings({"CCP_HOME": str(tmp_path), "CCP_PROFILE": "dev",
                               "CCP_RESULTS_DIR": "out"})
    assert (again.logs_dir, again.results_dir) == (s.logs_dir, s.results_dir)


def test_a_named_home_holds_the_config_home_too(tmp_path):
    """With CCP_HOME the licence pack, model file and user quotas live under it (<home>/config);
    without it they stay in ~/.config/ccp, the operators' place; CCP_CONFIG_HOME names another."""
    named = load_settings({"CCP_HOME": str(tmp_path), "HOME": "/home/op"})
    assert named.config_home == str(tmp_path / "config")
    assert load_settings({"HOME": "/home/op"}).config_home == "/home/op/.config/ccp"
    assert load_settings({"CCP_HOME": str(tmp_path), "CCP_CONFIG_HOME": "/c"}).config_home == "/c"
