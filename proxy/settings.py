"""Settings: the one place that reads the environment.

Everything the shim is told by its environment is parsed here, once, with strict casts and errors that
name the variable and its value. Secrets are wrapped in `Secret` so that `repr`/`str` never show them.
Other modules receive a `Settings` object and never touch `os.environ`.
"""
from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

from proxy.profiles import BASE_PORT, DEFAULT_PROFILE, resolve_profile
from proxy.routing import RoutingPolicy

if TYPE_CHECKING:
    from proxy.catalog import Catalog

DEFAULT_ANTHROPIC_BASE_URL = "https://api.anthropic.com"
DEFAULT_ZAI_BASE_URL = "https://api.z.ai/api/anthropic"
DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024
DEFAULT_JSON_TIMEOUT = 30.0
DEFAULT_SSE_IDLE_TIMEOUT = 120.0
DEFAULT_DIAL_TIMEOUT = 10.0
DEFAULT_HEADER_TIMEOUT = 60.0
DEFAULT_TLS_TIMEOUT = 10.0
DEFAULT_BACKOFF_MAX_RETRIES = 2
DEFAULT_BACKOFF_MAX_SECONDS = 10.0
UPSTREAM_CLIENTS = ("httpx", "aiohttp")
HEADER_MODES = ("x-api-key", "authorization")
# The repo providers file, relative to the working directory, is read when it exists. The routes file
# (the operators' config/llmproxy-cfg.yaml) is read only when CCP_CONFIG names it: it belongs to a
# task (sandbox runs) and its ENV: references need that task's environment.
DEFAULT_CONFIG_FILE = None
DEFAULT_PROVIDERS_FILE = "configs/providers.yaml"
MODEL_FILE = "model"  # <config home>/model: the persisted manual override (`ccp model NAME`)


class ConfigError(ValueError):
    """A setting has a value the shim cannot use; the message names the key and the value."""


class Secret:
    """A credential that never shows itself in logs, reprs or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __repr__(self) -> str:
        return "Secret('**********')" if self._value else "Secret('')"

    __str__ = __repr__


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_SIZE_RE = re.compile(r"^\s*(\d+)\s*(b|kb|k|kib|mb|m|mib|gb|g|gib)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {None: 1, "b": 1, "k": 1024, "kb": 1024, "kib": 1024, "m": 1024**2, "mb": 1024**2,
               "mib": 1024**2, "g": 1024**3, "gb": 1024**3, "gib": 1024**3}
_DURATION_UNITS = {None: 1.0, "s": 1.0, "ms": 0.001, "m": 60.0, "h": 3600.0}


def parse_bool(key: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{key}={raw!r}: expected 1/0, true/false, yes/no or on/off")


def parse_duration(key: str, raw: str) -> float:
    """Seconds from '30', '30s', '250ms', '2m' or '1h'."""
    m = _DURATION_RE.match(raw)
    if not m:
        raise ConfigError(f"{key}={raw!r}: expected a duration such as 30s, 250ms, 2m or 1h")
    seconds = float(m.group(1)) * _DURATION_UNITS[m.group(2)]
    if seconds <= 0:
        raise ConfigError(f"{key}={raw!r}: must be greater than zero")
    return seconds


def parse_size(key: str, raw: str) -> int:
    """Bytes from '1048576', '20MB', '512KiB'."""
    m = _SIZE_RE.match(raw)
    if not m:
        raise ConfigError(f"{key}={raw!r}: expected a size such as 20MB or 1048576")
    unit = m.group(2).lower() if m.group(2) else None
    size = int(m.group(1)) * _SIZE_UNITS[unit]
    if size <= 0:
        raise ConfigError(f"{key}={raw!r}: must be greater than zero")
    return size


def parse_count(key: str, raw: str) -> int:
    """A whole number of zero or more."""
    value = raw.strip()
    if not value.isdigit():
        raise ConfigError(f"{key}={raw!r}: expected a whole number (0, 1, 2, ...)")
    return int(value)


def parse_upstream_client(key: str, raw: str) -> str:
    value = raw.strip().lower()
    if value not in UPSTREAM_CLIENTS:
        raise ConfigError(f"{key}={raw!r}: expected one of {', '.join(UPSTREAM_CLIENTS)}")
    return value


def parse_pem_file(key: str, raw: str) -> str:
    path = raw.strip()
    if not Path(path).is_file():
        raise ConfigError(f"{key}={raw!r}: file not found")
    return path


def parse_base_url(key: str, raw: str) -> str:
    value = raw.strip().rstrip("/")
    if not re.match(r"^https?://[^/\s]+", value):
        raise ConfigError(f"{key}={raw!r}: expected an http:// or https:// URL")
    return value


@dataclass(frozen=True)
class Settings:
    """Everything the shim reads from its environment, parsed and validated."""

    anthropic_base_url: str = DEFAULT_ANTHROPIC_BASE_URL
    zai_base_url: str = DEFAULT_ZAI_BASE_URL
    zai_api_key: Secret = field(default_factory=lambda: Secret(""))
    anthropic_auth_token: Secret = field(default_factory=lambda: Secret(""))
    anthropic_api_key: Secret = field(default_factory=lambda: Secret(""))
    force_haiku_to_zai: bool = True
    offload_paused: bool = False
    zai_header_mode: str = "x-api-key"
    logs_dir: str = "logs"
    results_dir: str = "results"
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    json_timeout: float = DEFAULT_JSON_TIMEOUT
    sse_idle_timeout: float = DEFAULT_SSE_IDLE_TIMEOUT
    dial_timeout: float = DEFAULT_DIAL_TIMEOUT
    header_timeout: float = DEFAULT_HEADER_TIMEOUT
    tls_timeout: float = DEFAULT_TLS_TIMEOUT  # CCP_TLS_TIMEOUT: the TLS handshake alone
    force_h1: bool = False  # CCP_FORCE_H1 / MITM_FORCE_H1: HTTP/1.1 only (default: offer HTTP/2)
    upstream_client: str = "httpx"  # CCP_UPSTREAM_CLIENT: httpx (HTTP/2 capable) or aiohttp
    ca_bundle: str | None = None  # CCP_CA_BUNDLE / SSL_CERT_FILE: extra PEM CAs for upstream TLS
    enable_backoff: bool = False  # CCP_ENABLE_BACKOFF / MITM_ENABLE_BACKOFF: retry 429/503
    backoff_max_retries: int = DEFAULT_BACKOFF_MAX_RETRIES  # CCP_BACKOFF_MAX_RETRIES
    backoff_max_seconds: float = DEFAULT_BACKOFF_MAX_SECONDS  # CCP_BACKOFF_MAX_SECONDS: longest wait
    fallback_lane: str = ""  # CCP_FALLBACK_LANE: a provider to try once when a lane fails ("" = none)
    allow_real_api: bool = False
    profile: str = DEFAULT_PROFILE  # CCP_PROFILE: picks the default port and logs folder
    default_port: int = BASE_PORT  # the profile's port, used when `--port` is not given
    admin_token: Secret = field(default_factory=lambda: Secret(""))  # CCP_ADMIN_TOKEN
    require_session: bool = False  # CCP_REQUIRE_SESSION: unknown inbound tokens get a 401
    max_log_bytes: int = 5 * 1024 * 1024  # MAX_LOG_BYTES: rotate usage.jsonl past this size
    log_max_age: float = 24 * 3600.0  # CCP_LOG_MAX_AGE: … or when it is older than this
    body_tee: bool = False  # ENABLE_BODY_TEE: redacted samples of bodies under logs/tee
    config_file: str | None = None  # CCP_CONFIG (e.g. config/llmproxy-cfg.yaml)
    providers_file: str | None = None  # CCP_PROVIDERS_FILE, else configs/providers.yaml if it exists
    config_home: str = ""  # CCP_CONFIG_HOME, else $HOME/.config/ccp ("" = no user files)
    model_override: str | None = None  # CCP_MODEL, else the first line of <config home>/model
    model_override_source: str | None = None  # "CCP_MODEL" or the model file's path
    # Built by from_env() (so a bad file fails at start); a Settings made directly gets the built-in
    # lanes from its own fields. Read once: a running shim needs a restart to see file changes.
    catalog: "Catalog" = field(default=None, repr=False, compare=False)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.catalog is None:
            from proxy.catalog import Catalog, builtin_providers  # catalog imports this module
            object.__setattr__(self, "catalog", Catalog(builtin_providers(self)))

    @property
    def routing(self) -> RoutingPolicy:
        return RoutingPolicy(offload_paused=self.offload_paused,
                             force_haiku_to_zai=self.force_haiku_to_zai)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        """Build settings from `env` (default: the process environment)."""
        env = os.environ if env is None else env

        def get(*keys: str) -> tuple[str, str] | None:
            for key in keys:
                if key in env:
                    return key, env[key]
            return None

        kw: dict = {}
        for attr, keys, parse in (
            ("anthropic_base_url", ("CCP_ANTHROPIC_BASE_URL",), parse_base_url),
            ("zai_base_url", ("CCP_ZAI_BASE_URL",), parse_base_url),
            ("force_haiku_to_zai", ("FORCE_HAIKU_TO_ZAI",), parse_bool),
            ("offload_paused", ("OFFLOAD_PAUSED",), parse_bool),
            ("allow_real_api", ("ALLOW_REAL_API",), parse_bool),
            ("require_session", ("CCP_REQUIRE_SESSION",), parse_bool),
            ("max_log_bytes", ("MAX_LOG_BYTES", "CCP_MAX_LOG_BYTES"), parse_size),
            ("log_max_age", ("CCP_LOG_MAX_AGE",), parse_duration),
            ("body_tee", ("ENABLE_BODY_TEE",), parse_bool),
            ("max_body_bytes", ("CCP_MAX_BODY_BYTES",), parse_size),
            ("json_timeout", ("CCP_JSON_TIMEOUT",), parse_duration),
            ("sse_idle_timeout", ("CCP_SSE_IDLE_TIMEOUT",), parse_duration),
            ("dial_timeout", ("CCP_DIAL_TIMEOUT",), parse_duration),
            ("header_timeout", ("CCP_HEADER_TIMEOUT",), parse_duration),
            ("tls_timeout", ("CCP_TLS_TIMEOUT",), parse_duration),
            ("force_h1", ("CCP_FORCE_H1", "MITM_FORCE_H1"), parse_bool),
            ("enable_backoff", ("CCP_ENABLE_BACKOFF", "MITM_ENABLE_BACKOFF"), parse_bool),
            ("backoff_max_retries", ("CCP_BACKOFF_MAX_RETRIES",), parse_count),
            ("backoff_max_seconds", ("CCP_BACKOFF_MAX_SECONDS",), parse_duration),
            ("upstream_client", ("CCP_UPSTREAM_CLIENT",), parse_upstream_client),
            ("ca_bundle", ("CCP_CA_BUNDLE", "SSL_CERT_FILE"), parse_pem_file),
        ):
            found = get(*keys)
            if found is not None and found[1].strip() != "":
                kw[attr] = parse(*found)
        for attr, key in (("zai_api_key", "ZAI_API_KEY"),
                          ("anthropic_auth_token", "ANTHROPIC_AUTH_TOKEN"),
                          ("anthropic_api_key", "ANTHROPIC_API_KEY"),
                          ("admin_token", "CCP_ADMIN_TOKEN")):
            kw[attr] = Secret(env.get(key, "").strip())
        mode = env.get("ZAI_HEADER_MODE", "").strip().lower()
        if mode:
            if mode not in HEADER_MODES:
                raise ConfigError(f"ZAI_HEADER_MODE={mode!r}: expected one of {', '.join(HEADER_MODES)}")
            kw["zai_header_mode"] = mode
        try:
            profile = resolve_profile(env.get("CCP_PROFILE", ""))
        except ValueError as exc:
            raise ConfigError(f"CCP_PROFILE={exc}") from None
        kw.update(profile=profile.name, default_port=profile.port, logs_dir=profile.logs_dir)
        for attr, key in (("logs_dir", "CCP_LOGS_DIR"), ("results_dir", "CCP_RESULTS_DIR")):
            if env.get(key, "").strip():
                kw[attr] = env[key].strip()
        kw.update(_config_files(env))
        fallback = env.get("CCP_FALLBACK_LANE", "").strip()
        settings = cls(**kw)
        from proxy.catalog import load_catalog  # catalog imports this module
        catalog = load_catalog(settings, env)
        if fallback and catalog.provider(fallback) is None:
            raise ConfigError(f"CCP_FALLBACK_LANE={fallback!r}: no such provider "
                              f"(known: {', '.join(sorted(catalog.providers))})")
        return dataclasses.replace(settings, catalog=catalog, fallback_lane=fallback)

    def secrets(self) -> list[str]:
        """Every configured credential value (catalog keys included), for redaction."""
        values = [s.reveal() for s in (self.zai_api_key, self.anthropic_auth_token,
                                       self.anthropic_api_key, self.admin_token) if s]
        return values + [v for v in dict.fromkeys(self.catalog.secrets()) if v not in values]


def _config_files(env: Mapping[str, str]) -> dict:
    """Where the config files are, and the manual model override (CCP_MODEL or the model file)."""
    kw: dict = {}
    for attr, key, default in (("config_file", "CCP_CONFIG", DEFAULT_CONFIG_FILE),
                                ("providers_file", "CCP_PROVIDERS_FILE", DEFAULT_PROVIDERS_FILE)):
        named = env.get(key, "").strip()
        if named and not Path(named).is_file():
            raise ConfigError(f"{key}={named!r}: file not found")
        kw[attr] = named or (default if default and Path(default).is_file() else None)
    home = env.get("CCP_CONFIG_HOME", "").strip()
    if not home and env.get("HOME", "").strip():
        home = str(Path(env["HOME"].strip()) / ".config" / "ccp")
    kw["config_home"] = home
    if env.get("CCP_MODEL", "").strip():
        kw.update(model_override=env["CCP_MODEL"].strip(), model_override_source="CCP_MODEL")
    elif home:
        path = Path(home) / MODEL_FILE
        try:
            line = next((ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()
                         if ln.strip()), "")
        except (OSError, UnicodeDecodeError):
            line = ""  # no model file: no override
        if line:
            kw.update(model_override=line, model_override_source=str(path))
    return kw
