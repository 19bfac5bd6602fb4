"""The OpenSandbox server's configuration: our YAML in, the TOML `opensandbox-server` reads out.

    cfg = load_server_config("config/sandbox-server-cfg.yaml", os.environ)   # ConfigError naming key
    Path("sandbox.toml").write_text(to_toml(cfg))          # SANDBOX_CONFIG_PATH=sandbox.toml
    env = server_env(cfg)                                  # the API key travels here, not in the file

Our YAML (see config/sandbox-server-cfg.yaml): `server` {host, port, api_key, max_sandbox_timeout_seconds,
log_level}, `runtime` {type}, `docker` {network_mode, api_timeout}, `images` {registry_mirror,
sandbox, execd, egress}, `timeouts` {create_seconds, sandbox_ttl_seconds, command_seconds}.

The server's TOML (opensandbox-server 1.1.1, `opensandbox_server/config.py`): `[server]` host, port,
max_sandbox_timeout_seconds (api_key too, but it is read from OPENSANDBOX_SERVER_API_KEY instead);
`[log]` level; `[runtime]` type, execd_image (required); `[docker]` network_mode, api_timeout;
`[ingress]` mode = "direct" (the only mode with runtime docker); `[egress]` image. The server has
no registry-mirror setting, so the mirror is applied here by prefixing every image reference.
`images.sandbox` and `timeouts` are ccp's own: they configure the runtime, not the server.

`ENV:NAME` values are resolved from the `env` mapping given; in an optional key (server.api_key,
images.registry_mirror) an unset or empty variable means "not set", anywhere else it is an error.
Parsing is pure and raises ValueError (`"<key>: <problem> (value: <value>)"`); `load_server_config` is
the I/O edge and raises ConfigError naming the file. A secret value never appears in an error.
"""
from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from proxy.core.parse import ConfigError
from proxy.core.redact import Secret

RUNTIME_TYPES = ("docker", "kubernetes")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
OPTIONAL_ENV_KEYS = frozenset({"server.api_key", "images.registry_mirror"})
SECRET_KEYS = frozenset({"server.api_key"})
SERVER_API_KEY_ENV = "OPENSANDBOX_SERVER_API_KEY"
INSECURE_ENV = "OPENSANDBOX_INSECURE_SERVER"  # without a key, the server asks for this acknowledgement
DEFAULTS: dict[str, dict[str, Any]] = {
    "server": {"host": "127.0.0.1", "port": 8090, "api_key": None,
               "max_sandbox_timeout_seconds": None, "log_level": "INFO"},
    "runtime": {"type": "docker"},
    "docker": {"network_mode": "host", "api_timeout": 900},
    "images": {"registry_mirror": None, "sandbox": "opensandbox/code-interpreter:v1.0.1",
               "execd": "opensandbox/execd:v1.1.0", "egress": None},
    "timeouts": {"create_seconds": 900, "sandbox_ttl_seconds": 3600, "command_seconds": 1800},
}
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _show(key: str, value: Any) -> str:
    if key in SECRET_KEYS and not (isinstance(value, str) and value.startswith("ENV:")):
        return "**********"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _fail(key: str, problem: str, value: Any) -> ValueError:
    return ValueError(f"{key}: {problem} (value: {_show(key, value)})")


def _resolve(key: str, value: Any, env: Mapping[str, str]) -> Any:
    """`value` with an `ENV:NAME` reference replaced by the variable's value (None when optional)."""
    if not (isinstance(value, str) and value.startswith("ENV:")):
        return value
    name = value[4:].strip()
    if not _ENV_NAME.match(name):
        raise _fail(key, "expected ENV:<variable name>", value)
    resolved = env.get(name, "").strip()
    if resolved:
        return resolved
    if key in OPTIONAL_ENV_KEYS:
        return None
    raise _fail(key, f"unresolved reference: {name} is not set", value)


def _text(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _fail(key, "expected a non-empty string", value)
    return value.strip()


def _int(key: str, value: Any, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low \
            or (high is not None and value > high):
        bound = f"{low}-{high}" if high is not None else f">= {low}"
        raise _fail(key, f"expected an integer {bound}", value)
    return value


def mirrored(image: str, mirror: str | None) -> str:
    """`image` pulled through `mirror` (a registry host, optionally with a path prefix)."""
    if not mirror:
        return image
    first = image.split("/", 1)[0]
    if "/" in image and ("." in first or ":" in first or first == "localhost"):
        return image  # already names its registry
    return f"{mirror.rstrip('/')}/{image}"


def parse_server_config(data: Any, env: Mapping[str, str]) -> dict[str, Any]:
    """Our YAML data -> a complete, resolved config (sections as in DEFAULTS); ValueError naming the key."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise _fail("(top level)", "expected a mapping", data)
    unknown = sorted(set(data) - set(DEFAULTS))
    if unknown:
        raise _fail(str(unknown[0]), f"unknown section (expected one of {', '.join(DEFAULTS)})",
                    data[unknown[0]])
    cfg: dict[str, dict[str, Any]] = {}
    for section, defaults in DEFAULTS.items():
        given = data.get(section) or {}
        if not isinstance(given, Mapping):
            raise _fail(section, "expected a mapping", given)
        extra = sorted(set(given) - set(defaults))
        if extra:
            raise _fail(f"{section}.{extra[0]}", "unknown key", given[extra[0]])
        cfg[section] = {k: _resolve(f"{section}.{k}", given.get(k, v), env) for k, v in defaults.items()}

    server, docker, images, timeouts = cfg["server"], cfg["docker"], cfg["images"], cfg["timeouts"]
    server["host"] = _text("server.host", server["host"])
    server["port"] = _int("server.port", server["port"], 1, 65535)
    if server["api_key"] is not None:
        server["api_key"] = Secret(_text("server.api_key", server["api_key"]))
    if server["max_sandbox_timeout_seconds"] is not None:
        server["max_sandbox_timeout_seconds"] = _int("server.max_sandbox_timeout_seconds",
                                                     server["max_sandbox_timeout_seconds"], 60)
    level = _text("server.log_level", server["log_level"]).upper()
    if level not in LOG_LEVELS:
        raise _fail("server.log_level", f"expected one of {', '.join(LOG_LEVELS)}", level)
    server["log_level"] = level
    if cfg["runtime"]["type"] not in RUNTIME_TYPES:
        raise _fail("runtime.type", f"expected one of {', '.join(RUNTIME_TYPES)}", cfg["runtime"]["type"])
    docker["network_mode"] = _text("docker.network_mode", docker["network_mode"])
    docker["api_timeout"] = _int("docker.api_timeout", docker["api_timeout"], 1)
    mirror = images["registry_mirror"]
    if mirror is not None:
        images["registry_mirror"] = _text("images.registry_mirror", mirror).rstrip("/")
    for name in ("sandbox", "execd", "egress"):
        if images[name] is not None or name != "egress":
            images[name] = mirrored(_text(f"images.{name}", images[name]), images["registry_mirror"])
    for name in timeouts:
        timeouts[name] = _int(f"timeouts.{name}", timeouts[name], 1)
    return cfg


def load_server_config(path: str | Path, env: Mapping[str, str]) -> dict[str, Any]:
    """Read and parse our YAML at `path`; ConfigError naming the file and the key."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "document"
        raise ConfigError(f"{path}: {where}: invalid YAML: {getattr(exc, 'problem', None) or exc}") from None
    try:
        return parse_server_config(data, env)
    except ValueError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def server_toml_data(cfg: Mapping[str, Any], include_api_key: bool = False) -> dict[str, dict[str, Any]]:
    """The tables opensandbox-server reads, from a parsed config (None values left out)."""
    server, images = cfg["server"], cfg["images"]
    out: dict[str, dict[str, Any]] = {
        "server": {"host": server["host"], "port": server["port"],
                   "max_sandbox_timeout_seconds": server["max_sandbox_timeout_seconds"]},
        "log": {"level": server["log_level"]},
        "runtime": {"type": cfg["runtime"]["type"], "execd_image": images["execd"]},
        "docker": {"network_mode": cfg["docker"]["network_mode"],
                   "api_timeout": cfg["docker"]["api_timeout"]},
        "ingress": {"mode": "direct"},
    }
    if include_api_key and server["api_key"]:
        out["server"]["api_key"] = server["api_key"].reveal()
    if images["egress"]:
        out["egress"] = {"image": images["egress"]}
    return {table: {k: v for k, v in values.items() if v is not None} for table, values in out.items()}


def _toml_value(key: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(key, item) for item in value) + "]"
    raise ValueError(f"{key}: cannot be written as TOML (value: {type(value).__name__})")


def to_toml(cfg: Mapping[str, Any], include_api_key: bool = False) -> str:
    """The TOML text opensandbox-server reads for `cfg` (the API key only when asked for)."""
    lines = ["# Generated by harness/sandbox/server_config.py from our YAML; do not edit."]
    for table, values in server_toml_data(cfg, include_api_key).items():
        lines += ["", f"[{table}]"]
        for key, value in values.items():
            name = key if _BARE_KEY.match(key) else json.dumps(key)
            lines.append(f"{name} = {_toml_value(f'{table}.{key}', value)}")
    return "\n".join(lines) + "\n"


def server_env(cfg: Mapping[str, Any], config_path: str | Path | None = None) -> dict[str, str]:
    """Environment for launching opensandbox-server: its API key (or the no-key acknowledgement)."""
    api_key = cfg["server"]["api_key"]
    env = {SERVER_API_KEY_ENV: api_key.reveal()} if api_key else {INSECURE_ENV: "YES"}
    if config_path is not None:
        env["SANDBOX_CONFIG_PATH"] = str(config_path)
    return env
