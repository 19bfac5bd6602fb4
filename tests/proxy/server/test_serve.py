import gc

import pytest

from proxy.server.serve import GC_YOUNG_THRESHOLD, tune_gc

pytestmark = pytest.mark.quick


def test_tune_gc_freezes_what_exists_and_raises_the_young_threshold():
    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (max(GC_YOUNG_THRESHOLD, before[0]), *before[1:])
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_a_logs_folder_that_cannot_be_written_is_a_config_error_before_anything_binds(
        tmp_path, monkeypatch):
    from proxy.config.load import load_settings
    from proxy.core.parse import ConfigError
    from proxy.server import serve

    blocker = tmp_path / "file"
    blocker.write_text("")  # a folder under a regular file: refused even to root
    settings = load_settings({"CCP_LOGS_DIR": str(blocker / "logs")})
    monkeypatch.setattr(serve, "run_loop", lambda coro: pytest.fail("it should not serve"))
    with pytest.raises(ConfigError, match="cannot be written"):
        serve.run(settings, "127.0.0.1", 0)


@pytest.mark.parametrize("host, env, insecure, refused", [
    ("127.0.0.1", {}, False, False),
    ("::1", {}, False, False),
    ("localhost", {}, False, False),
    ("0.0.0.0", {}, False, True),
    ("10.0.0.2", {}, False, True),
    ("0.0.0.0", {"CCP_ADMIN_TOKEN": "t"}, False, False),
    ("0.0.0.0", {}, True, False),
    ("0.0.0.0", {"CCP_INSECURE_BIND": "1"}, False, False),
])
def test_a_non_loopback_bind_wants_an_admin_token_or_insecure_bind(host, env, insecure, refused):
    from proxy.config.settings import Settings
    from proxy.server.serve import bind_refusal

    why = bind_refusal(Settings.from_env(env), host, insecure)
    assert (why is not None) is refused
    if why:
        assert "CCP_ADMIN_TOKEN" in why and "--insecure-bind" in why


def test_default_instance_is_the_host_and_port():
    import os
    import socket

    from proxy.server.serve import default_instance
    assert default_instance(18080) == f"{socket.gethostname()}:18080"
    assert default_instance(0) == f"{socket.gethostname()}:pid{os.getpid()}"
