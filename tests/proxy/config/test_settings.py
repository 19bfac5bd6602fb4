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


BOUNDS = {  # env name: (attribute, default, a value, what it reads as)
    "CCP_CLIENT_HEADER_TIMEOUT": ("client_header_timeout", 30.0, "5s", 5.0),
    "CCP_CLIENT_BODY_TIMEOUT": ("client_body_timeout", 60.0, "2m", 120.0),
    "CCP_CLIENT_IDLE_TIMEOUT": ("client_idle_timeout", 300.0, "75", 75.0),
    "CCP_MAX_CONNECTIONS": ("max_connections", 0, "500", 500),
    "CCP_MAX_NAME_CHARS": ("max_name_chars", 256, "64", 64),
    "CCP_DECISION_CACHE_BYTES": ("decision_cache_bytes", 1024 * 1024, "64KiB", 65536),
    "CCP_MAX_RESPONSE_BYTES": ("max_response_bytes", 256 * 1024 * 1024, "1MB", 1024 * 1024),
    "CCP_UPSTREAM_POOL_SIZE": ("upstream_pool_size", 64, "8", 8),
    "CCP_ALLOWED_HOSTS": ("allowed_hosts", (), "Box.lan, 10.0.0.2 ,", ("box.lan", "10.0.0.2")),
    "CCP_ALLOWED_ORIGINS": ("allowed_origins", (), "http://a.test/", ("http://a.test",)),
    "CCP_INSECURE_BIND": ("insecure_bind", False, "1", True),
}


@pytest.mark.parametrize("key", sorted(BOUNDS))
def test_each_bound_has_a_default_an_env_name_and_a_documented_row(key):
    from pathlib import Path
    attr, default, raw, value = BOUNDS[key]
    assert getattr(Settings.from_env({}), attr) == default
    assert getattr(Settings.from_env({key: raw}), attr) == value
    docs = (Path(__file__).resolve().parents[3] / "docs" / "configuration.md").read_text()
    assert f"| `{key}`" in docs


@pytest.mark.parametrize("key, raw", [("CCP_MAX_NAME_CHARS", "0"), ("CCP_UPSTREAM_POOL_SIZE", "0"),
                                      ("CCP_CLIENT_HEADER_TIMEOUT", "0s"),
                                      ("CCP_MAX_CONNECTIONS", "-1")])
def test_bad_bounds_name_the_key(key, raw):
    with pytest.raises(ConfigError, match=key):
        Settings.from_env({key: raw})


def test_the_store_settings():
    s = Settings.from_env({"CCP_LOGS_DIR": "/tmp/x"})
    assert s.store_target == "/tmp/x/ccp.sqlite3" and s.store_queue_max == 100_000
    assert s.quota_sync == 10.0 and s.instance == ""
    s = Settings.from_env({"CCP_STORE_URL": "sqlite:///var/lib/ccp.sqlite3", "CCP_INSTANCE": "a"})
    assert s.store_target == "/var/lib/ccp.sqlite3" and s.instance == "a"
    url = "postgresql://ccp:pg-secret-9@db:5432/ccp"
    s = Settings.from_env({"CCP_STORE_URL": url, "CCP_STORE_QUEUE_MAX": "500",
                           "CCP_QUOTA_SYNC": "2s"})
    assert s.store_target == url and s.store_queue_max == 500 and s.quota_sync == 2.0
    assert "pg-secret-9" not in repr(s) and s.secrets() == ["pg-secret-9"]
    for bad in ({"CCP_STORE_URL": "mysql://db/ccp"}, {"CCP_STORE_QUEUE_MAX": "0"}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            Settings.from_env(bad)
