"""Settings: the one place that reads the environment, and only the environment.

Everything the shim is told by its environment is parsed here, once, with the parsers of
proxy.core.parse (strict casts, errors that name the variable and its value). Secrets are wrapped in
`Secret` so that `repr`/`str` never show them. What the environment *names* (config files, the
model file, the licence, the quotas file) is read by proxy.config.load, the runtime-loading edge,
which is what the shim and every verb call: `load_settings()`. Other modules receive a `Settings`
object and never touch `os.environ`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from proxy.config.catalog import Catalog, builtin_providers
from proxy.config.home import under
from proxy.config.profiles import BASE_PORT, DEFAULT_PROFILE, resolve_profile
from proxy.config.quotas import QuotaConfig
from proxy.config.quotas import parse_reroute_mode as _reroute_mode
from proxy.core.parse import (
    ConfigError,
    parse_base_url,
    parse_bool,
    parse_choice,
    parse_count,
    parse_duration,
    parse_size,
)
from proxy.core.redact import Secret
from proxy.core.routing import RoutingPolicy
from proxy.licence import verify as lic

DEFAULT_ANTHROPIC_BASE_URL = "https://api.anthropic.com"
DEFAULT_ZAI_BASE_URL = "https://api.z.ai/api/anthropic"
DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024
DEFAULT_JSON_TIMEOUT = 30.0
DEFAULT_SSE_IDLE_TIMEOUT = 120.0
DEFAULT_DIAL_TIMEOUT = 10.0
DEFAULT_HEADER_TIMEOUT = 60.0
DEFAULT_TLS_TIMEOUT = 10.0
DEFAULT_BACKOFF_MAX_RETRIES = 2
# inbound bounds (docs/configuration.md, "Bounds"): a slow client is cut, nothing grows unbounded
DEFAULT_CLIENT_HEADER_TIMEOUT = 30.0  # from a request's first byte to the end of its head
DEFAULT_CLIENT_BODY_TIMEOUT = 60.0  # from the end of the head to the end of the body
DEFAULT_CLIENT_IDLE_TIMEOUT = 300.0  # a keep-alive connection with no request in flight
DEFAULT_MAX_CONNECTIONS = 0  # 0: no cap
DEFAULT_MAX_NAME_CHARS = 256  # a model name (or another client string the shim logs or keeps)
DEFAULT_DECISION_CACHE_BYTES = 1024 * 1024
DEFAULT_MAX_RESPONSE_BYTES = 256 * 1024 * 1024
DEFAULT_UPSTREAM_POOL_SIZE = 64  # idle keep-alive connections kept per upstream host
DEFAULT_UPSTREAM_KEEPALIVE = 15.0  # seconds an idle upstream connection is kept for reuse
DEFAULT_BACKOFF_MAX_SECONDS = 10.0
UPSTREAM_CLIENTS = ("auto", "httpx", "aiohttp", "h1")
HEADER_MODES = ("x-api-key", "authorization")
# The repo providers file, relative to the ccp home (proxy.config.home), is read when it exists.
# The routes file (the operators' config/llmproxy-cfg.yaml) is read only when CCP_CONFIG names it:
# it belongs to a task (sandbox runs) and its ENV: references need that task's environment.
DEFAULT_CONFIG_FILE = None
DEFAULT_PROVIDERS_FILE = "configs/providers.yaml"
MODEL_FILE = "model"  # <config home>/model: the persisted manual override (`ccp model NAME`)
DB_FILE = "ccp.sqlite3"  # the usage store, in the logs folder unless CCP_DB_PATH names another
DEFAULT_ROLLUP_INTERVAL = 300.0
DEFAULT_SAMPLE_TTL_DAYS = 7
# a shim on a shared (PostgreSQL) store rebuilds its quota book from it this often, so what the other
# shims answered counts against the quotas too (0: only at start and on a reload)
DEFAULT_QUOTA_SYNC = 10.0
# … and asks it which of its sessions ended and which quotas a real 429 cools down this often
DEFAULT_FLEET_SYNC = 1.0
DEFAULT_STORE_QUEUE_MAX = 100_000  # proxy.sinks.store.DEFAULT_QUEUE_MAX
STORE_SCHEMES = ("sqlite://", "postgresql://", "postgres://")
QUOTAS_FILE = "quotas.yaml"  # <config home>/quotas.yaml (user) before configs/quotas.yaml (repo)
DEFAULT_QUOTAS_FILE = "configs/quotas.yaml"


def parse_upstream_client(key: str, raw: str) -> str:
    return parse_choice(key, raw, UPSTREAM_CLIENTS)


def parse_names(_key: str, raw: str) -> tuple[str, ...]:
    """A comma-separated list (CCP_ALLOWED_HOSTS, CCP_ALLOWED_ORIGINS), lower-cased, no blanks."""
    return tuple(dict.fromkeys(n.strip().lower().rstrip("/") for n in raw.split(",") if n.strip()))


def parse_path(_key: str, raw: str) -> str:
    """A file path as the environment gives it (proxy.config.load checks that it exists)."""
    return raw.strip()


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
    # proxy.config.home: the folder logs_dir/results_dir/repo configs are taken from, and why it is that one
    home: str = ""
    home_source: str = ""
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    json_timeout: float = DEFAULT_JSON_TIMEOUT
    sse_idle_timeout: float = DEFAULT_SSE_IDLE_TIMEOUT
    dial_timeout: float = DEFAULT_DIAL_TIMEOUT
    header_timeout: float = DEFAULT_HEADER_TIMEOUT
    tls_timeout: float = DEFAULT_TLS_TIMEOUT  # CCP_TLS_TIMEOUT: the TLS handshake alone
    force_h1: bool = False  # CCP_FORCE_H1 / MITM_FORCE_H1: HTTP/1.1 only, whatever else is set
    # CCP_HTTP2: https upstreams through the HTTP/2 client (httpx + h2, h2 offered by ALPN). Off by
    # default: on the bench the shim's own HTTP/1.1 client over TLS costs a fraction of it
    # (docs/upstream-clients.md)
    http2: bool = False
    # CCP_UPSTREAM_CLIENT: auto = the shim's own HTTP/1.1 client (proxy.upstream.h1) for cleartext
    # and https upstreams, or httpx for https ones when CCP_HTTP2 is on; h1, httpx and aiohttp name one
    upstream_client: str = "auto"
    ca_bundle: str | None = None  # CCP_CA_BUNDLE / SSL_CERT_FILE: extra PEM CAs for upstream TLS
    enable_backoff: bool = False  # CCP_ENABLE_BACKOFF / MITM_ENABLE_BACKOFF: retry 429/503
    backoff_max_retries: int = DEFAULT_BACKOFF_MAX_RETRIES  # CCP_BACKOFF_MAX_RETRIES
    backoff_max_seconds: float = (
        DEFAULT_BACKOFF_MAX_SECONDS  # CCP_BACKOFF_MAX_SECONDS: longest wait
    )
    fallback_lane: str = (
        ""  # CCP_FALLBACK_LANE: a provider to try once when a lane fails ("" = none)
    )
    allow_real_api: bool = False
    profile: str = DEFAULT_PROFILE  # CCP_PROFILE: picks the default port and logs folder
    default_port: int = BASE_PORT  # the profile's port, used when `--port` is not given
    admin_token: Secret = field(default_factory=lambda: Secret(""))  # CCP_ADMIN_TOKEN
    require_session: bool = False  # CCP_REQUIRE_SESSION: unknown inbound tokens get a 401
    # who may talk to the shim (proxy.core.trust): `Host` names besides the loopback ones and the
    # bound address, and the browser origins allowed (none: any request with an `Origin` is a 403)
    allowed_hosts: tuple[str, ...] = ()  # CCP_ALLOWED_HOSTS ("*": any)
    allowed_origins: tuple[str, ...] = ()  # CCP_ALLOWED_ORIGINS ("*": any)
    insecure_bind: bool = False  # CCP_INSECURE_BIND: serve a non-loopback address without a token
    # the bounds (docs/configuration.md, "Bounds")
    client_header_timeout: float = DEFAULT_CLIENT_HEADER_TIMEOUT  # CCP_CLIENT_HEADER_TIMEOUT
    client_body_timeout: float = DEFAULT_CLIENT_BODY_TIMEOUT  # CCP_CLIENT_BODY_TIMEOUT
    client_idle_timeout: float = DEFAULT_CLIENT_IDLE_TIMEOUT  # CCP_CLIENT_IDLE_TIMEOUT
    max_connections: int = DEFAULT_MAX_CONNECTIONS  # CCP_MAX_CONNECTIONS (0: no cap)
    max_name_chars: int = DEFAULT_MAX_NAME_CHARS  # CCP_MAX_NAME_CHARS
    decision_cache_bytes: int = DEFAULT_DECISION_CACHE_BYTES  # CCP_DECISION_CACHE_BYTES
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES  # CCP_MAX_RESPONSE_BYTES
    upstream_pool_size: int = DEFAULT_UPSTREAM_POOL_SIZE  # CCP_UPSTREAM_POOL_SIZE
    upstream_keepalive: float = DEFAULT_UPSTREAM_KEEPALIVE  # CCP_UPSTREAM_KEEPALIVE
    max_log_bytes: int = 5 * 1024 * 1024  # MAX_LOG_BYTES: rotate usage.jsonl past this size
    log_max_age: float = 24 * 3600.0  # CCP_LOG_MAX_AGE: … or when it is older than this
    body_tee: bool = False  # ENABLE_BODY_TEE: redacted samples of bodies under logs/tee
    config_file: str | None = None  # CCP_CONFIG (e.g. config/llmproxy-cfg.yaml)
    providers_file: str | None = (
        None  # CCP_PROVIDERS_FILE, else configs/providers.yaml if it exists
    )
    config_home: str = ""  # CCP_CONFIG_HOME, else $CCP_HOME/config, else ~/.config/ccp ("": none)
    model_override: str | None = None  # CCP_MODEL, else the first line of <config home>/model
    model_override_source: str | None = None  # "CCP_MODEL" or the model file's path
    licence_enforce: bool = False  # CCP_LICENSE_ENFORCE: haiku offload needs a licence (row 4a)
    # The licence in force, verified once by from_env() (sources: CC_LICENSE_PACK, <config home>/
    # license.pack, CC_LICENSE_JSON + CC_LICENSE_SIG); `ccp serve --license-pack` replaces it.
    licence: lic.LicenceState = field(default_factory=lic.LicenceState.missing)
    licence_keys: tuple[tuple[str, str], ...] = field(
        default=(), repr=False
    )  # CCP_LICENSE_PUBKEY_B64
    policy_url: str | None = None  # CCP_POLICY_URL: a signed policy pack (proxy.config.policy)
    policy_pubkey: str | None = None  # CCP_POLICY_PUBKEY: a file with the base64 public key
    # Routing toggles the environment set explicitly: a policy pack's defaults never override them.
    routing_from_env: frozenset[str] = field(default=frozenset(), repr=False, compare=False)
    persist: bool = True  # CCP_PERSIST: also write every usage record to the SQLite store
    db_path: str | None = None  # CCP_DB_PATH (None: <logs_dir>/ccp.sqlite3; see `db_file`)
    # CCP_STORE_URL: unset or sqlite:///path (the embedded file), or postgresql://… (one database
    # several shims share; proxy.sinks.store_pg). See `store_target`.
    store_url: str | None = field(default=None, repr=False)  # (it may carry a password)
    store_queue_max: int = DEFAULT_STORE_QUEUE_MAX  # CCP_STORE_QUEUE_MAX: rows waiting, at most
    quota_sync: float = DEFAULT_QUOTA_SYNC  # CCP_QUOTA_SYNC: the quota book re-read (PostgreSQL)
    fleet_sync: float = DEFAULT_FLEET_SYNC  # CCP_FLEET_SYNC: ended sessions, shared cooldowns
    instance: str = ""  # CCP_INSTANCE: which shim wrote a stored row ("": <hostname>:<port>)
    rollup_interval: float = DEFAULT_ROLLUP_INTERVAL  # CCP_ROLLUP_INTERVAL: hour/day rollups
    sample_ttl_days: int = DEFAULT_SAMPLE_TTL_DAYS  # CCP_SAMPLE_TTL_DAYS: 0 keeps samples forever
    quotas_file: str | None = None  # CCP_QUOTAS_FILE, else <config home>/quotas.yaml, else repo
    reroute_mode: str = "block"  # CCP_REROUTE_MODE (see proxy.sinks.quotas)
    dev_enable: bool = False  # CCP_DEV_ENABLE: the /v1/dev/* endpoints
    # `ccp mitm` (proxy.mitm.run): which flows the addon handles, and where mitmproxy keeps its CA
    mitm_filter_chain: str = "1"  # MITM_FILTER_CHAIN: 1 (Anthropic API hosts), 0 (off), or a filter
    mitm_confdir: str = ""  # CCP_MITM_CONFDIR, else $HOME/.mitmproxy (mitmproxy's own default)
    quotas: QuotaConfig = field(default=None, repr=False, compare=False)  # type: ignore[assignment]
    # Built by from_env() (so a bad file fails at start); a Settings made directly gets the built-in
    # lanes from its own fields. Read once: a running shim needs a restart to see file changes.
    catalog: Catalog = field(default=None, repr=False, compare=False)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.catalog is None:
            object.__setattr__(self, "catalog", Catalog(builtin_providers(self)))
        if self.quotas is None:
            object.__setattr__(self, "quotas", QuotaConfig())

    @property
    def db_file(self) -> str:
        """Where the SQLite usage store lives (CCP_DB_PATH, else <logs_dir>/ccp.sqlite3)."""
        return self.db_path or str(Path(self.logs_dir) / DB_FILE)

    @property
    def store_target(self) -> str:
        """The usage store: CCP_STORE_URL's PostgreSQL URL or SQLite path, else `db_file`."""
        url = self.store_url
        if not url:
            return self.db_file
        if url.startswith("sqlite://"):
            return url[len("sqlite://") :] or self.db_file
        return url

    @property
    def routing(self) -> RoutingPolicy:
        return RoutingPolicy(
            offload_paused=self.offload_paused,
            force_haiku_to_zai=self.force_haiku_to_zai,
            licence_enforced=self.licence_enforce,
            licence_allows_offload=lic.allows(self.licence, lic.FEATURE_ZAI_OFFLOAD),
        )

    def trusted_licence_keys(self) -> dict:
        """kid -> Ed25519 public key: the built-in keys plus CCP_LICENSE_PUBKEY_B64."""
        return lic.parse_trusted_keys(",".join(f"{k}={v}" for k, v in self.licence_keys))

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, home: Path | None = None, home_source: str = ""
    ) -> Settings:
        """Settings from `env` alone (default: the process environment); no file is read. `home`:
        the ccp home the relative paths sit in (proxy.config.home; default: CCP_HOME, else the
        working directory). The files it names are read by proxy.config.load.load_settings()."""
        env = os.environ if env is None else env
        if home is None:
            named = env.get("CCP_HOME", "").strip()
            home, home_source = (Path(named), "CCP_HOME") if named else (Path("."), "cwd")

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
            ("allowed_hosts", ("CCP_ALLOWED_HOSTS",), parse_names),
            ("allowed_origins", ("CCP_ALLOWED_ORIGINS",), parse_names),
            ("insecure_bind", ("CCP_INSECURE_BIND",), parse_bool),
            ("client_header_timeout", ("CCP_CLIENT_HEADER_TIMEOUT",), parse_duration),
            ("client_body_timeout", ("CCP_CLIENT_BODY_TIMEOUT",), parse_duration),
            ("client_idle_timeout", ("CCP_CLIENT_IDLE_TIMEOUT",), parse_duration),
            ("max_connections", ("CCP_MAX_CONNECTIONS",), parse_count),
            ("max_name_chars", ("CCP_MAX_NAME_CHARS",), parse_positive),
            ("decision_cache_bytes", ("CCP_DECISION_CACHE_BYTES",), parse_size),
            ("max_response_bytes", ("CCP_MAX_RESPONSE_BYTES",), parse_size),
            ("upstream_pool_size", ("CCP_UPSTREAM_POOL_SIZE",), parse_positive),
            ("upstream_keepalive", ("CCP_UPSTREAM_KEEPALIVE",), parse_duration),
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
            ("http2", ("CCP_HTTP2",), parse_bool),
            ("enable_backoff", ("CCP_ENABLE_BACKOFF", "MITM_ENABLE_BACKOFF"), parse_bool),
            ("backoff_max_retries", ("CCP_BACKOFF_MAX_RETRIES",), parse_count),
            ("backoff_max_seconds", ("CCP_BACKOFF_MAX_SECONDS",), parse_duration),
            ("upstream_client", ("CCP_UPSTREAM_CLIENT",), parse_upstream_client),
            ("ca_bundle", ("CCP_CA_BUNDLE", "SSL_CERT_FILE"), parse_path),
            ("persist", ("CCP_PERSIST",), parse_bool),
            ("rollup_interval", ("CCP_ROLLUP_INTERVAL",), parse_duration),
            ("sample_ttl_days", ("CCP_SAMPLE_TTL_DAYS",), parse_count),
            ("store_queue_max", ("CCP_STORE_QUEUE_MAX",), parse_positive),
            ("store_url", ("CCP_STORE_URL",), parse_store_url),
            ("quota_sync", ("CCP_QUOTA_SYNC",), parse_duration),
            ("fleet_sync", ("CCP_FLEET_SYNC",), parse_duration),
            ("reroute_mode", ("CCP_REROUTE_MODE",), parse_reroute_mode),
            ("dev_enable", ("CCP_DEV_ENABLE",), parse_bool),
            ("licence_enforce", ("CCP_LICENSE_ENFORCE",), parse_bool),
            ("policy_url", ("CCP_POLICY_URL",), parse_base_url),
            ("policy_pubkey", ("CCP_POLICY_PUBKEY",), parse_path),
        ):
            found = get(*keys)
            if found is not None and found[1].strip() != "":
                kw[attr] = parse(*found)
        for attr, key in (
            ("zai_api_key", "ZAI_API_KEY"),
            ("anthropic_auth_token", "ANTHROPIC_AUTH_TOKEN"),
            ("anthropic_api_key", "ANTHROPIC_API_KEY"),
            ("admin_token", "CCP_ADMIN_TOKEN"),
        ):
            kw[attr] = Secret(env.get(key, "").strip())
        mode = env.get("ZAI_HEADER_MODE", "").strip().lower()
        if mode:
            kw["zai_header_mode"] = parse_choice("ZAI_HEADER_MODE", mode, HEADER_MODES)
        try:
            profile = resolve_profile(env.get("CCP_PROFILE", ""))
        except ValueError as exc:
            raise ConfigError(f"CCP_PROFILE={exc}") from None
        kw.update(
            profile=profile.name,
            default_port=profile.port,
            home=str(home),
            home_source=home_source,
            logs_dir=under(home, profile.logs_dir),
            results_dir=under(home, "results"),
        )
        for attr, key in (("logs_dir", "CCP_LOGS_DIR"), ("results_dir", "CCP_RESULTS_DIR")):
            if env.get(key, "").strip():
                kw[attr] = under(home, env[key].strip())
        kw.update(config_names(env, home))
        kw["routing_from_env"] = frozenset(
            attr
            for attr, key in (
                ("force_haiku_to_zai", "FORCE_HAIKU_TO_ZAI"),
                ("offload_paused", "OFFLOAD_PAUSED"),
                ("zai_header_mode", "ZAI_HEADER_MODE"),
            )
            if env.get(key, "").strip()
        )
        if env.get("MITM_FILTER_CHAIN", "").strip():
            kw["mitm_filter_chain"] = env["MITM_FILTER_CHAIN"].strip()
        kw["mitm_confdir"] = env.get("CCP_MITM_CONFDIR", "").strip() or str(
            Path(env.get("HOME") or Path.home()) / ".mitmproxy"
        )
        kw["fallback_lane"] = env.get("CCP_FALLBACK_LANE", "").strip()
        kw["db_path"] = env.get("CCP_DB_PATH", "").strip() or None
        kw["instance"] = env.get("CCP_INSTANCE", "").strip()
        return cls(**kw)

    def secrets(self) -> list[str]:
        """Every configured credential value (catalog keys included), for redaction."""
        values = [
            s.reveal()
            for s in (
                self.zai_api_key,
                self.anthropic_auth_token,
                self.anthropic_api_key,
                self.admin_token,
            )
            if s
        ]
        password = _url_password(self.store_url)
        if password and password not in values:
            values.append(password)  # CCP_STORE_URL's: never in a log line
        return values + [v for v in dict.fromkeys(self.catalog.secrets()) if v not in values]


def _url_password(url: str | None) -> str | None:
    if not url or "@" not in url:
        return None
    try:
        return urlsplit(url).password
    except ValueError:
        return None


def parse_store_url(key: str, raw: str) -> str:
    """sqlite:///path or postgresql://… (a typo'd scheme fails at start, not at the first write)."""
    url = raw.strip()
    if not url.startswith(STORE_SCHEMES):
        raise ConfigError(
            f"{key}: expected sqlite:///path or postgresql://user@host:port/db, got "
            f"{url.split('://', 1)[0] + '://…' if '://' in url else repr(url[:40])}"
        )
    return url


def parse_positive(key: str, raw: str) -> int:
    """A whole number of one or more."""
    value = parse_count(key, raw)
    if value < 1:
        raise ConfigError(f"{key}={raw!r}: must be 1 or more")
    return value


def parse_reroute_mode(key: str, raw: str) -> str:
    try:
        return _reroute_mode(raw)
    except ValueError as exc:
        raise ConfigError(f"{key}={exc}") from None


def config_names(env: Mapping[str, str], home: Path) -> dict:
    """The config files and folder the environment names, and CCP_MODEL (not read here)."""
    kw: dict = {
        "config_file": env.get("CCP_CONFIG", "").strip() or None,
        "providers_file": env.get("CCP_PROVIDERS_FILE", "").strip() or None,
        "quotas_file": env.get("CCP_QUOTAS_FILE", "").strip() or None,
    }
    config_home = env.get("CCP_CONFIG_HOME", "").strip()
    if not config_home and env.get("CCP_HOME", "").strip():  # a named ccp home holds its config
        config_home = str(Path(under(home, "config")))
    if not config_home and env.get("HOME", "").strip():
        config_home = str(Path(env["HOME"].strip()) / ".config" / "ccp")
    kw["config_home"] = config_home
    if env.get("CCP_MODEL", "").strip():
        kw.update(model_override=env["CCP_MODEL"].strip(), model_override_source="CCP_MODEL")
    return kw
