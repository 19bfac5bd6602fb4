"""Our sandbox-server YAML and its translation to the TOML opensandbox-server reads."""
import tomllib
from pathlib import Path

import pytest
import yaml

from harness.sandbox.server_config import (
    INSECURE_ENV,
    SERVER_API_KEY_ENV,
    load_server_config,
    mirrored,
    parse_server_config,
    server_env,
    to_toml,
)
from proxy.core.parse import ConfigError

pytestmark = pytest.mark.quick

ROOT = Path(__file__).resolve().parents[3]
SHIPPED = ROOT / "config" / "sandbox-server-cfg.yaml"


def _parse(text: str, env=None):
    return parse_server_config(yaml.safe_load(text), env or {})


def test_the_shipped_file_translates_to_the_servers_tables():
    cfg = load_server_config(SHIPPED, {})
    toml = tomllib.loads(to_toml(cfg))
    assert toml == {
        "server": {"host": "127.0.0.1", "port": 8090, "max_sandbox_timeout_seconds": 7200},
        "log": {"level": "INFO"},
        "runtime": {"type": "docker", "execd_image": "opensandbox/execd:v1.1.0"},
        "docker": {"network_mode": "host", "api_timeout": 900},
        "ingress": {"mode": "direct"},
        "egress": {"image": "opensandbox/egress:v1.1.7"},
    }
    assert cfg["images"]["sandbox"] == "opensandbox/code-interpreter:v1.0.1"
    assert cfg["server"]["api_key"] is None and cfg["timeouts"]["create_seconds"] == 900


def test_env_references_resolve_and_the_mirror_prefixes_every_image():
    env = {"SANDBOX_REGISTRY": "registry.example.com/mirror/", "OPENSANDBOX_API_KEY": "sk-secret"}
    cfg = load_server_config(SHIPPED, env)
    assert cfg["images"]["sandbox"] == "registry.example.com/mirror/opensandbox/code-interpreter:v1.0.1"
    toml = tomllib.loads(to_toml(cfg))
    assert toml["runtime"]["execd_image"] == "registry.example.com/mirror/opensandbox/execd:v1.1.0"
    assert toml["egress"]["image"].startswith("registry.example.com/mirror/")
    # the key travels in the server's environment, not in the file (unless asked for)
    assert "api_key" not in toml["server"] and "sk-secret" not in to_toml(cfg)
    assert server_env(cfg, "/x/sandbox.toml") == {SERVER_API_KEY_ENV: "sk-secret",
                                                  "SANDBOX_CONFIG_PATH": "/x/sandbox.toml"}
    assert tomllib.loads(to_toml(cfg, include_api_key=True))["server"]["api_key"] == "sk-secret"
    assert "sk-secret" not in repr(cfg)


def test_without_a_key_the_server_is_told_to_start_insecure():
    assert server_env(_parse("server: {port: 9000}")) == {INSECURE_ENV: "YES"}


def test_a_required_env_reference_must_resolve():
    with pytest.raises(ValueError, match=r"^docker\.network_mode: unresolved reference: NET is not set"):
        _parse("docker: {network_mode: 'ENV:NET'}")
    assert _parse("docker: {network_mode: 'ENV:NET'}", {"NET": "bridge"})["docker"]["network_mode"] == "bridge"


@pytest.mark.parametrize("text, key", [
    ("server: {port: 70000}", "server.port"),
    ("server: {port: 'abc'}", "server.port"),
    ("server: {max_sandbox_timeout_seconds: 10}", "server.max_sandbox_timeout_seconds"),
    ("server: {log_level: chatty}", "server.log_level"),
    ("server: {colour: red}", "server.colour"),
    ("runtime: {type: podman}", "runtime.type"),
    ("docker: {network_mode: ''}", "docker.network_mode"),
    ("images: {execd: 5}", "images.execd"),
    ("timeouts: {create_seconds: 0}", "timeouts.create_seconds"),
    ("volumes: {}", "volumes"),
    ("server: [1]", "server"),
    ("server: {api_key: 'ENV:not a name'}", "server.api_key"),
])
def test_errors_name_the_key(text, key):
    with pytest.raises(ValueError, match=rf"^{key.replace('.', '[.]')}: "):
        _parse(text)


def test_a_literal_api_key_never_shows_in_an_error():
    with pytest.raises(ValueError) as info:
        _parse("server: {api_key: ['sk-literal']}")
    assert "sk-literal" not in str(info.value) and "**********" in str(info.value)


def test_load_errors_name_the_file(tmp_path):
    bad = tmp_path / "cfg.yaml"
    bad.write_text("server: {port: -1}\n")
    with pytest.raises(ConfigError, match=rf"^{bad}: server\.port: "):
        load_server_config(bad, {})
    bad.write_text("server: [\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_server_config(bad, {})
    with pytest.raises(ConfigError, match="cannot read"):
        load_server_config(tmp_path / "missing.yaml", {})


def test_an_empty_file_is_all_defaults():
    cfg = _parse("")
    assert cfg["docker"]["network_mode"] == "host" and cfg["server"]["port"] == 8090


@pytest.mark.parametrize("image, mirror, expected", [
    ("opensandbox/execd:v1", None, "opensandbox/execd:v1"),
    ("opensandbox/execd:v1", "m.example.com", "m.example.com/opensandbox/execd:v1"),
    ("ubuntu", "m.example.com/", "m.example.com/ubuntu"),
    ("ghcr.io/x/y:1", "m.example.com", "ghcr.io/x/y:1"),
    ("localhost:5000/x:1", "m.example.com", "localhost:5000/x:1"),
])
def test_mirrored(image, mirror, expected):
    assert mirrored(image, mirror) == expected
