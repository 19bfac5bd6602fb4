import pytest

from proxy.cli.override import main
from proxy.config.load import load_settings

pytestmark = pytest.mark.quick


@pytest.fixture(autouse=True)
def no_shim(monkeypatch):
    """No shim answers: the verb talks to a port where nothing listens, never to a real one."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        nobody = f"http://127.0.0.1:{s.getsockname()[1]}"
    monkeypatch.setattr("proxy.cli.controls.shim_url", lambda settings, url=None: url or nobody)
    return nobody


@pytest.fixture
def env(tmp_path):
    providers = tmp_path / "providers.yaml"
    providers.write_text("providers:\n  alt:\n    base_url: https://alt.test\n    key_env: ALT_KEY\n"
                         "    routes: [{name: my-sonnet-alias, model: claude-sonnet-4-5}]\n")
    return {"CCP_CONFIG_HOME": str(tmp_path / "home"), "CCP_PROVIDERS_FILE": str(providers)}


def test_no_override_by_default(env, capsys):
    assert main([], env) == 0
    assert "no manual override" in capsys.readouterr().out
    assert load_settings(env).model_override is None


def test_set_a_route_show_it_and_clear_it(env, tmp_path, capsys):
    assert main(["my-sonnet-alias"], env) == 0
    out = capsys.readouterr().out
    assert "provider alt" in out and "claude-sonnet-4-5" in out
    assert "no shim answers on http://127.0.0.1:" in out and "it applies when the shim starts" in out
    model_file = tmp_path / "home" / "model"
    assert model_file.read_text() == "my-sonnet-alias\n"
    s = load_settings(env)
    assert (s.model_override, s.model_override_source) == ("my-sonnet-alias", str(model_file))

    assert main([], env) == 0
    assert f"my-sonnet-alias (from {model_file}; no shim answers on " in capsys.readouterr().out

    assert main(["--clear"], env) == 0
    assert "removed" in capsys.readouterr().out and not model_file.exists()
    assert load_settings(env).model_override is None
    assert main(["--clear"], env) == 0
    assert "nothing to remove" in capsys.readouterr().out


def test_a_plain_model_id_goes_to_the_anthropic_lane(env, capsys):
    assert main(["claude-opus-4-1"], env) == 0
    assert "anthropic lane, model claude-opus-4-1" in capsys.readouterr().out


def test_ccp_model_env_beats_the_file(env, capsys):
    assert main(["my-sonnet-alias"], env) == 0
    s = load_settings({**env, "CCP_MODEL": "claude-opus-4-1"})
    assert (s.model_override, s.model_override_source) == ("claude-opus-4-1", "CCP_MODEL")
    assert main(["--clear"], {**env, "CCP_MODEL": "claude-opus-4-1"}) == 0
    assert "CCP_MODEL=claude-opus-4-1 is set" in capsys.readouterr().out


@pytest.mark.parametrize("name", ["", "two words"])
def test_a_bad_name_is_a_usage_error(env, tmp_path, capsys, name):
    assert main([name], env) == 2
    assert "UsageError" in capsys.readouterr().err
    assert not (tmp_path / "home" / "model").exists()


def test_name_and_clear_together_is_a_usage_error(env):
    with pytest.raises(SystemExit) as exc:
        main(["x", "--clear"], env)
    assert exc.value.code == 2


def test_no_config_home_is_a_config_error():
    from proxy.core.parse import ConfigError
    with pytest.raises(ConfigError, match="CCP_CONFIG_HOME"):
        main(["x"], {})


def test_the_verb_is_wired_into_the_cli(env, monkeypatch, capsys):
    from proxy.cli.main import VERBS
    from proxy.cli.main import main as ccp
    assert "model" in VERBS
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert ccp(["model", "my-sonnet-alias"]) == 0 and ccp(["model"]) == 0
    assert "my-sonnet-alias" in capsys.readouterr().out
