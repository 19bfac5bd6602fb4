import os
import socket

import pytest

from proxy.config.load import load_settings
from proxy.config.profiles import (
    BUILTIN,
    Profile,
    RunFiles,
    custom_port,
    pid_alive,
    port_free,
    read_int,
    resolve_profile,
    running_pid,
)
from proxy.core.parse import ConfigError

pytestmark = pytest.mark.quick


def test_builtin_profiles():
    assert resolve_profile("") == resolve_profile("default") == Profile("default", 18080, "logs")
    assert resolve_profile("prod") == Profile("prod", 18080, "logs")
    assert resolve_profile("dev") == Profile("dev", 18180, "logs/dev")


@pytest.mark.parametrize("name", ["staging", "qa-2", "my_box", "a"])
def test_other_names_get_their_own_folder_and_a_stable_port(name):
    profile = resolve_profile(name)
    assert profile.logs_dir == f"logs/{name}"
    assert profile.port == custom_port(name) == resolve_profile(name).port
    assert 18280 <= profile.port < 19080
    assert profile.port not in {p.port for p in BUILTIN.values()} | {18090}


@pytest.mark.parametrize("name", ["Dev", "../etc", "a b", "x" * 41, "dév"])
def test_bad_names_are_refused(name):
    with pytest.raises(ValueError):
        resolve_profile(name)
    with pytest.raises(ConfigError, match="CCP_PROFILE="):
        load_settings({"CCP_PROFILE": name})


def test_settings_take_the_profile():
    s = load_settings({"CCP_PROFILE": "dev"})
    assert (s.profile, s.default_port, s.logs_dir) == ("dev", 18180, f"{s.home}/logs/dev")
    plain = load_settings({})
    assert (plain.profile, plain.default_port, plain.logs_dir) == ("default", 18080,
                                                                    f"{plain.home}/logs")


def test_explicit_logs_dir_wins_over_the_profile():
    s = load_settings({"CCP_PROFILE": "dev", "CCP_LOGS_DIR": "/tmp/elsewhere"})
    assert (s.logs_dir, s.default_port) == ("/tmp/elsewhere", 18180)


def test_run_files_live_in_the_logs_folder(tmp_path):
    files = RunFiles(tmp_path)
    assert files.pid.parent == files.port.parent == files.log.parent == tmp_path
    assert files.usage.name == "usage.jsonl"
    files.pid.write_text("12\n")
    files.port.write_text("not a port")
    assert read_int(files.pid) == 12 and read_int(files.port) is None
    files.clear()
    assert not files.pid.exists() and not files.port.exists()
    files.clear()  # nothing left to remove is fine


def test_stale_or_foreign_pid_files_do_not_count(tmp_path):
    files = RunFiles(tmp_path)
    assert running_pid(files) is None
    files.pid.write_text("garbage")
    assert running_pid(files) is None
    files.pid.write_text(f"{2**22 + 12345}\n")  # above pid_max: no such process
    assert running_pid(files) is None
    assert pid_alive(os.getpid())
    files.pid.write_text(f"{os.getpid()}\n")  # alive, but pytest is not a `serve`
    if os.path.exists(f"/proc/{os.getpid()}/cmdline"):
        assert running_pid(files) is None


def test_port_free_sees_a_listener():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        assert not port_free("127.0.0.1", sock.getsockname()[1])
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert port_free("127.0.0.1", port)


def test_bind_problem_is_one_line_naming_the_port_and_what_to_do():
    from proxy.config.profiles import bind_problem
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert bind_problem("127.0.0.1", port, "pick another") == \
            f"PortBusy: 127.0.0.1:{port} is in use; pick another"
    assert bind_problem("127.0.0.1", 0, "x") is None  # the OS chooses
    assert bind_problem("203.0.113.7", 18080, "x").startswith("BindError: cannot bind 203.0.113.7:18080")
