"""The loading edge (proxy.config.load.load_settings): the files the environment names must exist
and are read here, at start: the CA bundle and policy key, the routes and providers files, the model
file, the licence, the catalog and the quotas file. (The licence's sources in order are in
tests/proxy/licence/test_verify.py, the catalog files' contents in tests/proxy/config/test_catalog.py.)"""
from pathlib import Path

import pytest

from proxy.config.load import existing_file, load_settings, quotas_file_candidates
from proxy.core.parse import ConfigError

pytestmark = pytest.mark.quick


def test_settings_find_the_quotas_file_by_precedence(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    body = "quotas:\n  haiku:\n    weekly: {tokens: %d}\n"
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "quotas.yaml").write_text(body % 1)
    home = tmp_path / "home"
    home.mkdir()
    env = {"CCP_CONFIG_HOME": str(home), "CCP_HOME": str(tmp_path)}
    assert load_settings(env).quotas_file == str(tmp_path / "configs" / "quotas.yaml")
    (home / "quotas.yaml").write_text(body % 2)
    s = load_settings(env)
    assert s.quotas.quotas[0].weekly_tokens == 2 and s.quotas.source == str(home / "quotas.yaml")
    named = tmp_path / "mine.yaml"
    named.write_text(body % 3)
    s = load_settings({"CCP_CONFIG_HOME": str(home), "CCP_QUOTAS_FILE": str(named)})
    assert s.quotas.quotas[0].weekly_tokens == 3
    with pytest.raises(ConfigError, match="CCP_QUOTAS_FILE"):
        load_settings({"CCP_QUOTAS_FILE": str(tmp_path / "missing.yaml")})
    named.write_text("quotas:\n  haiku: {weekly: {tokens: zero}}\n")
    with pytest.raises(ConfigError, match="weekly.tokens"):
        load_settings({"CCP_QUOTAS_FILE": str(named)})


@pytest.mark.parametrize("env, key", [
    ({"CCP_CA_BUNDLE": "/nonexistent/ca.pem"}, "CCP_CA_BUNDLE"),
    ({"SSL_CERT_FILE": "/nonexistent/ca.pem"}, "SSL_CERT_FILE"),
    ({"CCP_FALLBACK_LANE": "nowhere"}, "CCP_FALLBACK_LANE"),
])
def test_bad_transport_values_name_the_key(env, key):
    with pytest.raises(ConfigError, match=key):
        load_settings(env)


def test_the_named_ca_bundle_must_be_a_file_and_is_then_used(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("pem")
    assert load_settings({"SSL_CERT_FILE": str(ca)}).ca_bundle == str(ca)
    with pytest.raises(ConfigError, match=r"^CCP_CA_BUNDLE='.*': file not found$"):
        load_settings({"CCP_CA_BUNDLE": str(tmp_path)})  # a folder is not a bundle


def test_a_missing_policy_key_says_what_the_file_should_hold(tmp_path):
    with pytest.raises(ConfigError, match=r"file not found \(expected a file with a base64 public key\)"):
        load_settings({"CCP_POLICY_PUBKEY": str(tmp_path / "missing.b64")})


def test_an_unknown_fallback_lane_lists_the_known_ones():
    with pytest.raises(ConfigError, match=r"no such provider \(known: anthropic, zai\)"):
        load_settings({"CCP_FALLBACK_LANE": "glm", "CCP_CONFIG_HOME": "/nonexistent/ccp"})
    assert load_settings({"CCP_FALLBACK_LANE": "zai"}).fallback_lane == "zai"


def test_the_model_file_is_the_override_by_its_first_non_empty_line(tmp_path):
    home = tmp_path / "config"
    home.mkdir()
    env = {"CCP_CONFIG_HOME": str(home)}
    assert load_settings(env).model_override is None  # no file: no override
    (home / "model").write_text("\n  \n  glm-4.6  \nclaude-opus-4-1\n")
    s = load_settings(env)
    assert (s.model_override, s.model_override_source) == ("glm-4.6", str(home / "model"))
    (home / "model").write_text("\n   \n")
    assert load_settings(env).model_override is None
    (home / "model").unlink()
    (home / "model").mkdir()  # unreadable as a file: no override, no crash
    assert load_settings(env).model_override is None


def test_ccp_model_in_the_environment_means_the_model_file_is_not_read(tmp_path):
    (tmp_path / "model").write_text("glm-4.6\n")
    s = load_settings({"CCP_CONFIG_HOME": str(tmp_path), "CCP_MODEL": "claude-opus-4-1"})
    assert (s.model_override, s.model_override_source) == ("claude-opus-4-1", "CCP_MODEL")


def test_named_config_files_are_taken_from_the_working_directory_as_absolute_paths(tmp_path,
                                                                                monkeypatch):
    (tmp_path / "routes.yaml").write_text("routes: []\n")
    (tmp_path / "providers.yaml").write_text("# none\n")
    monkeypatch.chdir(tmp_path)
    s = load_settings({"CCP_CONFIG": "routes.yaml", "CCP_PROVIDERS_FILE": "./providers.yaml",
                       "CCP_CONFIG_HOME": str(tmp_path / "h")})
    assert (s.config_file, s.providers_file) == (str(tmp_path / "routes.yaml"),
                                                 str(tmp_path / "providers.yaml"))
    assert s.catalog is not None and s.catalog.provider("anthropic") is not None


def test_no_quotas_file_anywhere_means_no_quotas(tmp_path):
    s = load_settings({"CCP_HOME": str(tmp_path), "CCP_CONFIG_HOME": str(tmp_path / "h")})
    assert s.quotas_file is None and s.quotas.quotas == () and s.quotas.source is None


def test_quotas_file_candidates_in_precedence_order(tmp_path):
    env = {"CCP_QUOTAS_FILE": " mine.yaml ", "CCP_HOME": str(tmp_path)}
    assert quotas_file_candidates(env, "/c") == [
        ("CCP_QUOTAS_FILE", "mine.yaml"), ("user", "/c/quotas.yaml"),
        ("repo", str(tmp_path / "configs" / "quotas.yaml"))]
    assert [origin for origin, _ in quotas_file_candidates({}, "", Path("/h"))] == ["repo"]


def test_existing_file_strips_the_path_and_names_key_and_hint_when_missing(tmp_path):
    f = tmp_path / "key.b64"
    f.write_text("k")
    assert existing_file("K", f"  {f} ") == str(f)
    with pytest.raises(ConfigError, match=r"^K='nope': file not found \(try again\)$"):
        existing_file("K", "nope", " (try again)")
