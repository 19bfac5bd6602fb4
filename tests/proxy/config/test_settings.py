"""Settings from the environment alone (proxy.config.settings.Settings.from_env): defaults, strict
parsing, secrets kept out of reprs. The files the environment names are read by
proxy.config.load (tests/proxy/config/test_load.py)."""
import pytest

from proxy.config.settings import Settings
from proxy.core.parse import ConfigError
from proxy.core.redact import Secret

pytestmark = pytest.mark.quick


def test_defaults_from_empty_env():
    s = Settings.from_env({})
    assert s.anthropic_base_url == "https://api.anthropic.com"
    assert s.zai_base_url.endswith("/api/anthropic")
    assert s.force_haiku_to_zai and not s.offload_paused
    assert s.zai_header_mode == "x-api-key"
    assert s.max_body_bytes == 32 * 1024 * 1024
    assert s.secrets() == []


def test_values_are_parsed_strictly():
    s = Settings.from_env({"CCP_ANTHROPIC_BASE_URL": "http://127.0.0.1:9/", "FORCE_HAIKU_TO_ZAI": "off",
                           "OFFLOAD_PAUSED": "yes", "ZAI_HEADER_MODE": "Authorization",
                           "CCP_MAX_BODY_BYTES": "20MB", "CCP_SSE_IDLE_TIMEOUT": "250ms",
                           "CCP_LOGS_DIR": "/tmp/x"})
    assert s.anthropic_base_url == "http://127.0.0.1:9"
    assert not s.force_haiku_to_zai and s.offload_paused
    assert s.zai_header_mode == "authorization"
    assert s.max_body_bytes == 20 * 1024 * 1024
    assert s.sse_idle_timeout == pytest.approx(0.25)
    assert s.logs_dir == "/tmp/x"


@pytest.mark.parametrize("env, key", [
    ({"FORCE_HAIKU_TO_ZAI": "maybe"}, "FORCE_HAIKU_TO_ZAI"),
    ({"ZAI_HEADER_MODE": "cookie"}, "ZAI_HEADER_MODE"),
    ({"CCP_ZAI_BASE_URL": "ftp://x"}, "CCP_ZAI_BASE_URL"),
    ({"CCP_MAX_BODY_BYTES": "lots"}, "CCP_MAX_BODY_BYTES"),
    ({"CCP_JSON_TIMEOUT": "0s"}, "CCP_JSON_TIMEOUT"),
])
def test_bad_values_name_the_key(env, key):
    with pytest.raises(ConfigError, match=key):
        Settings.from_env(env)


def test_secrets_never_show_in_repr():
    s = Settings.from_env({"ZAI_API_KEY": "zai-secret-123", "ANTHROPIC_AUTH_TOKEN": "sk-ant-xyz"})
    assert "zai-secret-123" not in repr(s) and "sk-ant-xyz" not in repr(s)
    assert "zai-secret-123" not in str(s.zai_api_key)
    assert sorted(s.secrets()) == ["sk-ant-xyz", "zai-secret-123"]
    assert Secret("a") == Secret("a") and not Secret("")


def test_upstream_transport_settings(tmp_path):
    s = Settings.from_env({})
    assert (s.force_h1, s.enable_backoff, s.upstream_client, s.ca_bundle, s.fallback_lane) == \
        (False, False, "auto", None, "")
    assert (s.tls_timeout, s.backoff_max_retries, s.backoff_max_seconds) == (10.0, 2, 10.0)
    ca = tmp_path / "ca.pem"
    ca.write_text("pem")
    s = Settings.from_env({"MITM_FORCE_H1": "1", "MITM_ENABLE_BACKOFF": "yes", "CCP_TLS_TIMEOUT": "3s",
                           "CCP_BACKOFF_MAX_RETRIES": "0", "CCP_BACKOFF_MAX_SECONDS": "500ms",
                           "CCP_UPSTREAM_CLIENT": "AIOHTTP", "SSL_CERT_FILE": str(ca),
                           "CCP_FALLBACK_LANE": "anthropic"})
    assert s.force_h1 and s.enable_backoff and s.tls_timeout == 3.0
    assert (s.backoff_max_retries, s.backoff_max_seconds) == (0, 0.5)
    assert (s.upstream_client, s.ca_bundle, s.fallback_lane) == ("aiohttp", str(ca), "anthropic")
    assert not Settings.from_env({"CCP_FORCE_H1": "0", "MITM_FORCE_H1": "1"}).force_h1  # CCP_ first


@pytest.mark.parametrize("env, key", [
    ({"CCP_FORCE_H1": "sometimes"}, "CCP_FORCE_H1"),
    ({"CCP_BACKOFF_MAX_RETRIES": "-1"}, "CCP_BACKOFF_MAX_RETRIES"),
    ({"CCP_UPSTREAM_CLIENT": "curl"}, "CCP_UPSTREAM_CLIENT"),
])
def test_bad_transport_values_name_the_key(env, key):
    with pytest.raises(ConfigError, match=key):
        Settings.from_env(env)


def test_the_environment_alone_is_read_so_named_files_need_not_exist_yet():
    s = Settings.from_env({"CCP_CA_BUNDLE": "/nonexistent/ca.pem", "CCP_FALLBACK_LANE": "nowhere",
                           "CCP_QUOTAS_FILE": "/nonexistent/q.yaml", "CCP_CONFIG_HOME": "/c"})
    assert (s.ca_bundle, s.fallback_lane, s.quotas_file) == \
        ("/nonexistent/ca.pem", "nowhere", "/nonexistent/q.yaml")
    assert {p.source for p in s.catalog.providers.values()} == {"built-in"}  # no file was read
    assert s.model_override is None and s.config_home == "/c"
