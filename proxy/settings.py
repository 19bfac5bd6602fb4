"""Settings: the one place that reads the environment.

Everything the shim is told by its environment is parsed here, once, with strict casts and errors that
name the variable and its value. Secrets are wrapped in `Secret` so that `repr`/`str` never show them.
Other modules receive a `Settings` object and never touch `os.environ`.
"""
from __future__ import annotations

import dataclasses
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

from proxy import license as lic
from proxy.home import resolve_home, under
from proxy.profiles import BASE_PORT, DEFAULT_PROFILE, resolve_profile
from proxy.routing import RoutingPolicy

if TYPE_CHECKING:
    from proxy.catalog import Catalog
    from proxy.quotas import QuotaConfig

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
UPSTREAM_CLIENTS = ("auto", "httpx", "aiohttp", "h1")
HEADER_MODES = ("x-api-key", "authorization")
# The repo providers file, relative to the ccp home (proxy.home), is read when it exists. The routes file
# (the operators' config/llmproxy-cfg.yaml) is read only when CCP_CONFIG names it: it belongs to a
# task (sandbox runs) and its ENV: references need that task's environment.
DEFAULT_CONFIG_FILE = None
DEFAULT_PROVIDERS_FILE = "configs/providers.yaml"
MODEL_FILE = "model"  # <config home>/model: the persisted manual override (`ccp model NAME`)
DB_FILE = "ccp.sqlite3"  # the usage store, in the logs folder unless CCP_DB_PATH names another
DEFAULT_ROLLUP_INTERVAL = 300.0
DEFAULT_SAMPLE_TTL_DAYS = 7
QUOTAS_FILE = "quotas.yaml"  # <config home>/quotas.yaml (user) before configs/quotas.yaml (repo)
DEFAULT_QUOTAS_FILE = "configs/quotas.yaml"


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


def parse_pubkey_file(key: str, raw: str) -> str:
    path = raw.strip()
    if not Path(path).is_file():
        raise ConfigError(f"{key}={raw!r}: file not found (expected a file with a base64 public key)")
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
    # proxy.home: the folder logs_dir/results_dir/repo configs are taken from, and why it is that one
    home: str = ""
    home_source: str = ""
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    json_timeout: float = DEFAULT_JSON_TIMEOUT
    sse_idle_timeout: float = DEFAULT_SSE_IDLE_TIMEOUT
    dial_timeout: float = DEFAULT_DIAL_TIMEOUT
    header_timeout: float = DEFAULT_HEADER_TIMEOUT
    tls_timeout: float = DEFAULT_TLS_TIMEOUT  # CCP_TLS_TIMEOUT: the TLS handshake alone
    force_h1: bool = False  # CCP_FORCE_H1 / MITM_FORCE_H1: HTTP/1.1 only (default: offer HTTP/2)
    # CCP_UPSTREAM_CLIENT: auto = httpx (HTTP/2 by ALPN) for https upstreams, the shim's own HTTP/1.1
    # client (proxy.upstream_h1) for cleartext ones (no HTTP/2 there: nothing negotiates it); aiohttp
    # stays selectable
    upstream_client: str = "auto"
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
    config_home: str = ""  # CCP_CONFIG_HOME, else $CCP_HOME/config, else ~/.config/ccp ("": none)
    model_override: str | None = None  # CCP_MODEL, else the first line of <config home>/model
    model_override_source: str | None = None  # "CCP_MODEL" or the model file's path
    licence_enforce: bool = False  # CCP_LICENSE_ENFORCE: haiku offload needs a licence (row 4a)
    # The licence in force, verified once by from_env() (sources: CC_LICENSE_PACK, <config home>/
    # license.pack, CC_LICENSE_JSON + CC_LICENSE_SIG); `ccp serve --license-pack` replaces it.
    licence: lic.LicenceState = field(default_factory=lic.LicenceState.missing)
    licence_keys: tuple[tuple[str, str], ...] = field(default=(), repr=False)  # CCP_LICENSE_PUBKEY_B64
    policy_url: str | None = None  # CCP_POLICY_URL: a signed policy pack (proxy.policy)
    policy_pubkey: str | None = None  # CCP_POLICY_PUBKEY: a file with the base64 public key
    # Routing toggles the environment set explicitly: a policy pack's defaults never override them.
    routing_from_env: frozenset[str] = field(default=frozenset(), repr=False, compare=False)
    persist: bool = True  # CCP_PERSIST: also write every usage record to the SQLite store
    db_path: str | None = None  # CCP_DB_PATH (None: <logs_dir>/ccp.sqlite3; see `db_file`)
    rollup_interval: float = DEFAULT_ROLLUP_INTERVAL  # CCP_ROLLUP_INTERVAL: hour/day rollups
    sample_ttl_days: int = DEFAULT_SAMPLE_TTL_DAYS  # CCP_SAMPLE_TTL_DAYS: 0 keeps samples forever
    quotas_file: str | None = None  # CCP_QUOTAS_FILE, else <config home>/quotas.yaml, else repo
    reroute_mode: str = "block"  # CCP_REROUTE_MODE (see proxy.quotas)
    dev_enable: bool = False  # CCP_DEV_ENABLE: the /v1/dev/* endpoints
    # `ccp mitm` (proxy.mitm): which flows the addon handles, and where mitmproxy keeps its CA
    mitm_filter_chain: str = "1"  # MITM_FILTER_CHAIN: 1 (Anthropic API hosts), 0 (off), or a filter
    mitm_confdir: str = ""  # CCP_MITM_CONFDIR, else $HOME/.mitmproxy (mitmproxy's own default)
    quotas: "QuotaConfig" = field(default=None, repr=False, compare=False)  # type: ignore[assignment]
    # Built by from_env() (so a bad file fails at start); a Settings made directly gets the built-in
    # lanes from its own fields. Read once: a running shim needs a restart to see file changes.
    catalog: "Catalog" = field(default=None, repr=False, compare=False)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.catalog is None:
            from proxy.catalog import Catalog, builtin_providers  # catalog imports this module
            object.__setattr__(self, "catalog", Catalog(builtin_providers(self)))
        if self.quotas is None:
            from proxy.quotas import QuotaConfig
            object.__setattr__(self, "quotas", QuotaConfig())

    @property
    def db_file(self) -> str:
        """Where the usage store lives (CCP_DB_PATH, else <logs_dir>/ccp.sqlite3)."""
        return self.db_path or str(Path(self.logs_dir) / DB_FILE)

    @property
    def routing(self) -> RoutingPolicy:
        return RoutingPolicy(offload_paused=self.offload_paused,
                             force_haiku_to_zai=self.force_haiku_to_zai,
                             licence_enforced=self.licence_enforce,
                             licence_allows_offload=lic.allows(self.licence, lic.FEATURE_ZAI_OFFLOAD))

    def trusted_licence_keys(self) -> dict:
        """kid -> Ed25519 public key: the built-in keys plus CCP_LICENSE_PUBKEY_B64."""
        return lic.parse_trusted_keys(",".join(f"{k}={v}" for k, v in self.licence_keys))

    def with_licence_pack(self, pack_file: str, now: float) -> "Settings":
        """These settings with the licence from `pack_file` (``ccp serve --license-pack``)."""
        state = lic.load_state(pack_file, "", None, None, self.trusted_licence_keys(), now)
        return dataclasses.replace(self, licence=state)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, now: float | None = None) -> "Settings":
        """Build settings from `env` (default: the process environment); `now` dates the licence."""
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
            ("persist", ("CCP_PERSIST",), parse_bool),
            ("rollup_interval", ("CCP_ROLLUP_INTERVAL",), parse_duration),
            ("sample_ttl_days", ("CCP_SAMPLE_TTL_DAYS",), parse_count),
            ("reroute_mode", ("CCP_REROUTE_MODE",), parse_reroute_mode),
            ("dev_enable", ("CCP_DEV_ENABLE",), parse_bool),
            ("licence_enforce", ("CCP_LICENSE_ENFORCE",), parse_bool),
            ("policy_url", ("CCP_POLICY_URL",), parse_base_url),
            ("policy_pubkey", ("CCP_POLICY_PUBKEY",), parse_pubkey_file),
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
        home, home_source = resolve_home(env)
        kw.update(profile=profile.name, default_port=profile.port, home=str(home),
                  home_source=home_source, logs_dir=under(home, profile.logs_dir),
                  results_dir=under(home, "results"))
        for attr, key in (("logs_dir", "CCP_LOGS_DIR"), ("results_dir", "CCP_RESULTS_DIR")):
            if env.get(key, "").strip():
                kw[attr] = under(home, env[key].strip())
        kw.update(_config_files(env, home))
        kw.update(_licence(env, kw["config_home"], time.time() if now is None else now))
        kw["routing_from_env"] = frozenset(
            attr for attr, key in (("force_haiku_to_zai", "FORCE_HAIKU_TO_ZAI"),
                                   ("offload_paused", "OFFLOAD_PAUSED"),
                                   ("zai_header_mode", "ZAI_HEADER_MODE")) if env.get(key, "").strip())
        if env.get("MITM_FILTER_CHAIN", "").strip():
            kw["mitm_filter_chain"] = env["MITM_FILTER_CHAIN"].strip()
        kw["mitm_confdir"] = (env.get("CCP_MITM_CONFDIR", "").strip()
                              or str(Path(env.get("HOME") or Path.home()) / ".mitmproxy"))
        fallback = env.get("CCP_FALLBACK_LANE", "").strip()
        settings = cls(**kw)
        from proxy.catalog import load_catalog  # catalog imports this module
        catalog = load_catalog(settings, env)
        if fallback and catalog.provider(fallback) is None:
            raise ConfigError(f"CCP_FALLBACK_LANE={fallback!r}: no such provider "
                              f"(known: {', '.join(sorted(catalog.providers))})")
        db_path = env.get("CCP_DB_PATH", "").strip() or None
        quotas_file = _quotas_file(env, settings.config_home, home)
        quotas = None
        if quotas_file:
            from proxy.quotas import QuotaError, load_quotas
            try:
                quotas = load_quotas(quotas_file, catalog.providers)
            except QuotaError as exc:
                raise ConfigError(f"CCP_QUOTAS_FILE: {exc}") from None
        return dataclasses.replace(settings, catalog=catalog, fallback_lane=fallback, db_path=db_path,
                                   quotas_file=quotas_file, quotas=quotas)

    def secrets(self) -> list[str]:
        """Every configured credential value (catalog keys included), for redaction."""
        values = [s.reveal() for s in (self.zai_api_key, self.anthropic_auth_token,
                                       self.anthropic_api_key, self.admin_token) if s]
        return values + [v for v in dict.fromkeys(self.catalog.secrets()) if v not in values]


def parse_reroute_mode(key: str, raw: str) -> str:
    from proxy.quotas import parse_reroute_mode as parse
    try:
        return parse(raw)
    except ValueError as exc:
        raise ConfigError(f"{key}={exc}") from None


def quotas_file_candidates(env: Mapping[str, str], config_home: str,
                           home: Path | None = None) -> list[tuple[str, str]]:
    """Where a quotas file may be, highest precedence first: (origin, path)."""
    out = []
    if env.get("CCP_QUOTAS_FILE", "").strip():
        out.append(("CCP_QUOTAS_FILE", env["CCP_QUOTAS_FILE"].strip()))
    if config_home:
        out.append(("user", str(Path(config_home) / QUOTAS_FILE)))
    home = resolve_home(env)[0] if home is None else home
    out.append(("repo", under(home, DEFAULT_QUOTAS_FILE)))
    return out


def _quotas_file(env: Mapping[str, str], config_home: str, home: Path) -> str | None:
    """CCP_QUOTAS_FILE (must exist), else the user file, else the repo file, else None."""
    for origin, path in quotas_file_candidates(env, config_home, home):
        if Path(path).is_file():
            return path
        if origin == "CCP_QUOTAS_FILE":
            raise ConfigError(f"CCP_QUOTAS_FILE={path!r}: file not found")
    return None


def _config_files(env: Mapping[str, str], home: Path) -> dict:
    """Where the config files are, and the manual model override (CCP_MODEL or the model file).
    A file the environment names is taken from the working directory; a repo default from `home`."""
    kw: dict = {}
    for attr, key, default in (("config_file", "CCP_CONFIG", DEFAULT_CONFIG_FILE),
                                ("providers_file", "CCP_PROVIDERS_FILE", DEFAULT_PROVIDERS_FILE)):
        named = env.get(key, "").strip()
        if named and not Path(named).is_file():
            raise ConfigError(f"{key}={named!r}: file not found")
        repo = under(home, default) if default else None
        kw[attr] = (str(Path(named).resolve()) if named
                    else repo if repo and Path(repo).is_file() else None)
    home = env.get("CCP_CONFIG_HOME", "").strip()
    if not home and env.get("CCP_HOME", "").strip():  # a named ccp home holds its config too
        home = str(Path(under(resolve_home(env)[0], "config")))
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


def _licence(env: Mapping[str, str], config_home: str, now: float) -> dict:
    """Trusted licence keys and the licence in force (verified once, here, at start)."""
    spec = env.get("CCP_LICENSE_PUBKEY_B64", "")
    try:
        trusted = lic.parse_trusted_keys(spec)
    except ValueError as exc:  # the message names the kid, never the key material
        raise ConfigError(f"CCP_LICENSE_PUBKEY_B64: {exc}") from None
    keys = tuple((kid, lic.public_key_b64(key)) for kid, key in trusted.items())
    state = lic.load_state(env.get("CC_LICENSE_PACK", "").strip() or None, config_home,
                           env.get("CC_LICENSE_JSON", "").strip() or None,
                           env.get("CC_LICENSE_SIG", "").strip() or None, trusted, now)
    return {"licence_keys": keys, "licence": state}
