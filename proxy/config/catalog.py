"""The provider catalog: which upstreams exist and which model names route to them.

One YAML format, two top-level keys, and any config file may hold either or both:

- ``routes:`` (the operators' ``config/llmproxy-cfg.yaml``) — a list of
  ``{name, protocol, base_url, api_key | key_env, header_mode?, model?}`` or ``{name, provider, model?}``.
  A route with its own ``base_url`` implies a provider of its own named ``route:<name>`` (one provider
  per route, never grouped, so a log line names the route that served it); ``provider: NAME`` points
  at a provider from any file (or a built-in lane) instead.
- ``providers:`` (the operators' ``configs/providers.yaml``) — a mapping ``NAME: {base_url,
  protocol?, key_env | api_key, header_mode?, profile?, routes: [{name, model?} | "name"]}``.
  ``profile:`` (also on a route with its own ``base_url``) names a provider profile or sets its knobs:
  see ``proxy.core.provider_profiles``.

Credentials: ``api_key: ENV:NAME`` must resolve now (unset or empty is an error); ``key_env: NAME``
names a variable that may be unset (shown as unset by ``ccp providers``); any other ``api_key`` is a
literal. Header modes: ``x-api-key`` (default for protocol anthropic) or ``authorization`` (sent as
``Bearer``; default for openai; ``bearer`` is accepted as its alias).

Precedence, lowest first: built-in lanes < routes file (``CCP_CONFIG``) < providers file
(``CCP_PROVIDERS_FILE`` / ``configs/providers.yaml``) < user file (``<config home>/providers.yaml``).
A provider entry replaces a lower one of the same name as a whole, except the built-in lanes
``anthropic`` and ``zai``, whose fields are overridden one by one. A route replaces a lower route of
the same name (a ``route:<name>`` provider goes with its route). Each entry records its ``source``: a
file path or ``built-in``.

Parsing and merging are pure and raise ``ValueError`` (``"<key path>: <problem> (value: <value>)"``);
``load_catalog`` is the I/O edge that reads the files and turns errors into ``ConfigError`` naming the
file. A secret value never appears in an error.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import yaml

from proxy import protocols
from proxy.core.parse import ConfigError
from proxy.core.provider_profiles import ProviderProfile, parse_profile
from proxy.core.redact import Secret

if TYPE_CHECKING:
    from proxy.config.settings import Settings

BUILT_IN = "built-in"
BUILTIN_LANES = ("anthropic", "zai")
PROTOCOLS = protocols.NAMES  # one adapter each (proxy.protocols)
HEADER_MODES = {
    "x-api-key": "x-api-key",
    "authorization": "authorization",
    "bearer": "authorization",
}
DEFAULT_HEADER_MODE = {
    name: adapter.default_header_mode for name, adapter in protocols.REGISTRY.items()
}
ROUTE_PROVIDER_PREFIX = "route:"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_URL_RE = re.compile(r"^https?://[^/\s]+\S*$")
_GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class Provider:
    """An upstream: where it is, which protocol it speaks, and the credential the shim sends it."""

    name: str
    protocol: str
    base_url: str
    api_key: Secret
    key_env: str | None
    header_mode: str
    source: str
    profile: ProviderProfile | None = (
        None  # None: requests go as they are (proxy.core.provider_profiles)
    )


@dataclass(frozen=True)
class Route:
    """A model name (exact, or an fnmatch glob; case-insensitive) served by a provider."""

    name: str
    provider: str
    upstream_model: str | None
    source: str

    @property
    def is_glob(self) -> bool:
        return bool(_GLOB_CHARS & set(self.name))

    def matches(self, model: str) -> bool:
        if self.is_glob:
            return fnmatchcase(model.lower(), self.name.lower())
        return model.lower() == self.name.lower()


@dataclass(frozen=True)
class Catalog:
    providers: dict[str, Provider]
    routes: tuple[Route, ...] = ()
    if TYPE_CHECKING:  # set by __post_init__, not fields (see there)
        _exact: dict[str, Route] = field(init=False)
        _globs: tuple[tuple[str, Route], ...] = field(init=False)

    def __post_init__(self) -> None:
        # match() runs for every request: the routes indexed once (a frozen dataclass, so set
        # directly; not fields, so equality and repr are the routes' own)
        exact: dict[str, Route] = {}
        globs = []
        for r in self.routes:
            if r.is_glob:
                globs.append((r.name.lower(), r))
            else:
                exact.setdefault(r.name.lower(), r)  # the first in order wins, as in a scan
        object.__setattr__(self, "_exact", exact)
        object.__setattr__(self, "_globs", tuple(globs))

    def match(self, model: str) -> Route | None:
        """The route for `model`: exact names before globs, then precedence and file order."""
        lowered = model.lower()
        route = self._exact.get(lowered)
        if route is not None:
            return route
        return next((r for pattern, r in self._globs if fnmatchcase(lowered, pattern)), None)

    def provider(self, name: str) -> Provider | None:
        return self.providers.get(name)

    def secrets(self) -> list[str]:
        """Every credential value in the catalog, for redaction."""
        return [p.api_key.reveal() for p in self.providers.values() if p.api_key]

    def view(self) -> list[dict]:
        """The merged view for `ccp providers`: built-in lanes first; key names, never key values."""
        view = []
        for p in self.providers.values():
            view.append(
                {
                    "name": p.name,
                    "protocol": p.protocol,
                    "base_url": p.base_url,
                    "credential_env": p.key_env,
                    "credential_set": bool(p.api_key),
                    # the anthropic lane sends the client's own credential first: no header mode of its own
                    "header_mode": None if p.name == "anthropic" else p.header_mode,
                    "source": p.source,
                    "profile": p.profile.name if p.profile else None,
                    "knobs": p.profile.knobs() if p.profile else None,
                    "routes": [
                        {"name": r.name, "upstream_model": r.upstream_model, "source": r.source}
                        for r in self.routes
                        if r.provider == p.name
                    ],
                }
            )
        return view


class Layer(NamedTuple):
    """One parsed file: provider entries (full, or field overrides for a built-in lane) and routes."""

    source: str
    providers: dict[str, dict[str, Any]]
    routes: tuple[Route, ...]
    keys: dict[str, str] = {}  # route name (lower case) -> its key path in the file, for errors


def builtin_providers(settings: Settings) -> dict[str, Provider]:
    """The two lanes every shim has, from the environment already parsed into `settings`."""
    anth_env = (
        "ANTHROPIC_AUTH_TOKEN"
        if settings.anthropic_auth_token
        else "ANTHROPIC_API_KEY"
        if settings.anthropic_api_key
        else "ANTHROPIC_AUTH_TOKEN"
    )
    anth_key = settings.anthropic_auth_token or settings.anthropic_api_key
    return {
        "anthropic": Provider(
            "anthropic",
            "anthropic",
            settings.anthropic_base_url,
            anth_key,
            anth_env,
            "authorization" if settings.anthropic_auth_token else "x-api-key",
            BUILT_IN,
        ),
        "zai": Provider(
            "zai",
            "anthropic",
            settings.zai_base_url,
            settings.zai_api_key,
            "ZAI_API_KEY",
            settings.zai_header_mode,
            BUILT_IN,
        ),
    }


def _show(value: Any, secret: bool = False) -> str:
    """A value for an error message: short, and masked when it may be a credential."""
    if isinstance(value, Mapping):
        return "keys " + ", ".join(str(k) for k in value) if value else "{}"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    if secret and not (isinstance(value, str) and value.startswith("ENV:")):
        return "**********"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _fail(key: str, problem: str, value: Any, secret: bool = False) -> ValueError:
    return ValueError(f"{key}: {problem} (value: {_show(value, secret)})")


def parse_yaml(text: str) -> Any:
    """YAML text to data; the error names the line and column, never the file's content."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "document"
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise ValueError(f"{where}: invalid YAML: {problem} (value: not parsed)") from None


def _text(entry: Mapping, field: str, key: str, required: bool = False) -> str | None:
    value = entry.get(field)
    if value is None:
        if required:
            raise _fail(f"{key}.{field}", "missing", entry)
        return None
    if not isinstance(value, str) or not value.strip():
        raise _fail(f"{key}.{field}", "expected a non-empty string", value, field == "api_key")
    return value.strip()


def _credential(entry: Mapping, key: str, env: Mapping[str, str]) -> dict[str, Any]:
    """api_key / key_env -> {api_key: Secret, key_env: name or None}, or {} when neither is given."""
    api_key, key_env = _text(entry, "api_key", key), _text(entry, "key_env", key)
    if api_key is not None and key_env is not None:
        raise _fail(key, "set either api_key or key_env, not both", entry)
    if key_env is not None:
        if not _ENV_NAME_RE.match(key_env):  # masked: a key pasted here by mistake must not leak
            raise _fail(f"{key}.key_env", "expected an environment variable name", key_env, True)
        return {"api_key": Secret(env.get(key_env, "").strip()), "key_env": key_env}
    if api_key is None:
        return {}
    if not api_key.startswith("ENV:"):
        return {"api_key": Secret(api_key), "key_env": None}
    name = api_key[4:].strip()
    if not _ENV_NAME_RE.match(name):
        raise _fail(f"{key}.api_key", "expected ENV:<variable name>", "ENV:...")
    if not env.get(name, "").strip():
        raise _fail(f"{key}.api_key", f"unresolved reference: {name} is not set", api_key)
    return {"api_key": Secret(env[name].strip()), "key_env": name}


def _endpoint(entry: Mapping, key: str, env: Mapping[str, str], partial: bool) -> dict[str, Any]:
    """The provider fields of `entry`; all required unless `partial` (a built-in lane's override)."""
    fields: dict[str, Any] = {}
    base_url = _text(entry, "base_url", key, required=not partial)
    if base_url is not None and base_url.startswith("ENV:"):  # e.g. a mock's or a mirror's URL
        name = base_url[4:].strip()
        if not env.get(name, "").strip():
            raise _fail(f"{key}.base_url", f"unresolved reference: {name} is not set", base_url)
        base_url = env[name].strip()
    if base_url is not None:
        if not _URL_RE.match(base_url):
            raise _fail(f"{key}.base_url", "expected an http:// or https:// URL", base_url)
        fields["base_url"] = base_url.rstrip("/")
    protocol = _text(entry, "protocol", key)
    if protocol is not None:
        if protocol.lower() not in PROTOCOLS:
            raise _fail(f"{key}.protocol", f"expected one of {', '.join(PROTOCOLS)}", protocol)
        fields["protocol"] = protocol.lower()
    elif not partial:
        fields["protocol"] = "anthropic"
    mode = _text(entry, "header_mode", key)
    if mode is not None:
        if mode.lower() not in HEADER_MODES:
            raise _fail(f"{key}.header_mode", f"expected one of {', '.join(HEADER_MODES)}", mode)
        fields["header_mode"] = HEADER_MODES[mode.lower()]
    elif not partial:
        fields["header_mode"] = DEFAULT_HEADER_MODE[fields["protocol"]]
    if entry.get("profile") is not None:
        fields["profile"] = parse_profile(entry["profile"], f"{key}.profile")
    fields.update(_credential(entry, key, env))
    if not partial and "api_key" not in fields:
        raise _fail(key, "no credential: set key_env or api_key", entry)
    return fields


def _route(entry: Any, key: str, provider: str | None, source: str) -> Route:
    if isinstance(entry, str):
        entry = {"name": entry}
    if not isinstance(entry, Mapping):
        raise _fail(key, "expected a mapping or a model name", entry)
    name = _text(entry, "name", key, required=True)
    assert name is not None
    if provider is None:  # a top-level route: its own endpoint, or a named provider
        provider = _text(entry, "provider", key) or ROUTE_PROVIDER_PREFIX + name
    return Route(name, provider, _text(entry, "model", key), source)


def parse_config(data: Any, env: Mapping[str, str], source: str) -> Layer:
    """One config file's data (either shape, or both) -> a Layer; ValueError names key and value."""
    if data is None:
        return Layer(source, {}, ())
    if not isinstance(data, Mapping):
        raise _fail("(top level)", "expected a mapping with providers: and/or routes:", data)
    providers: dict[str, dict[str, Any]] = {}
    routes: list[tuple[str, Route]] = []
    raw = data.get("providers") or {}
    if isinstance(raw, list):  # also accept a list of entries that carry their own name
        raw = {
            (e.get("name") if isinstance(e, Mapping) else None) or f"[{i}]": e
            for i, e in enumerate(raw)
        }
    if not isinstance(raw, Mapping):
        raise _fail("providers", "expected a mapping of NAME: {base_url, ...}", raw)
    for name, entry in raw.items():
        key = f"providers.{name}"
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise _fail(key, "expected a provider name of letters, digits, '.', '_' or '-'", name)
        if not isinstance(entry, Mapping):
            raise _fail(key, "expected a mapping", entry)
        providers[name] = _endpoint(entry, key, env, partial=name in BUILTIN_LANES)
        entries = entry.get("routes") or []
        if not isinstance(entries, list):
            raise _fail(f"{key}.routes", "expected a list", entries)
        routes += [
            (f"{key}.routes[{i}]", _route(r, f"{key}.routes[{i}]", name, source))
            for i, r in enumerate(entries)
        ]
    raw_routes = data.get("routes") or []
    if not isinstance(raw_routes, list):
        raise _fail("routes", "expected a list of {name, ...}", raw_routes)
    for i, entry in enumerate(raw_routes):
        key = f"routes[{i}]"
        if not isinstance(entry, Mapping):
            raise _fail(key, "expected a mapping {name, base_url, ...} or {name, provider}", entry)
        route = _route(entry, key, None, source)
        if route.provider.startswith(ROUTE_PROVIDER_PREFIX):
            if "provider" in entry:
                raise _fail(f"{key}.provider", "expected a provider name", entry["provider"])
            providers[route.provider] = _endpoint(entry, key, env, partial=False)
        elif "base_url" in entry:
            raise _fail(key, "set either provider or base_url, not both", entry)
        elif entry.get("profile") is not None:  # the named provider's own entry carries it
            raise _fail(
                f"{key}.profile", f"set the profile on provider {route.provider}", entry["profile"]
            )
        routes.append((key, route))
    keys: dict[str, str] = {}
    for key, route in routes:
        if route.name.lower() in keys:
            raise _fail(
                f"{key}.name",
                f"duplicate route name in this file (first at {keys[route.name.lower()]})",
                route.name,
            )
        keys[route.name.lower()] = key
    return Layer(source, providers, tuple(r for _, r in routes), keys)


def merge(builtins: Mapping[str, Provider], layers: list[Layer]) -> Catalog:
    """Built-ins, then layers lowest precedence first -> a Catalog (ValueError names the file)."""
    providers = dict(builtins)
    routes: list[Route] = []
    for layer in layers:
        for name, fields in layer.providers.items():
            if name in BUILTIN_LANES and name in providers:
                providers[name] = dataclasses.replace(
                    providers[name], source=layer.source, **fields
                )
            else:
                providers.pop(name, None)  # re-insert: a replaced entry moves after its overrider
                providers[name] = Provider(name=name, source=layer.source, **fields)
        names = {r.name.lower() for r in layer.routes}
        routes = [*layer.routes, *(r for r in routes if r.name.lower() not in names)]
    served = {r.provider for r in routes}  # a route:<name> provider lives only as long as its route
    providers = {
        n: p for n, p in providers.items() if not n.startswith(ROUTE_PROVIDER_PREFIX) or n in served
    }
    keys = {layer.source: layer.keys for layer in layers}
    for route in routes:  # a route may name a provider from any file, so check after the merge
        if route.provider not in providers:
            key = keys.get(route.source, {}).get(route.name.lower(), f"routes.{route.name}")
            raise ValueError(
                f"{route.source}: {key}.provider: unknown provider (value: {route.provider!r})"
            )
    return Catalog(providers, tuple(routes))


def user_providers_file(settings: Settings) -> Path | None:
    return Path(settings.config_home) / "providers.yaml" if settings.config_home else None


def load_catalog(settings: Settings, env: Mapping[str, str]) -> Catalog:
    """Read the config files named by `settings`, resolve ENV: references from `env`, merge.

    Raises ConfigError "<file>: <key path>: <problem> (value: <value>)". The routes and providers
    files must exist when named; the user file is optional.
    """
    user = user_providers_file(settings)
    paths = [(settings.config_file, True), (settings.providers_file, True), (user, False)]
    layers = []
    for path, required in paths:
        if path is None or (not required and not Path(path).is_file()):
            continue
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}"
            ) from None
        try:
            layers.append(parse_config(parse_yaml(text), env, str(path)))
        except ValueError as exc:
            raise ConfigError(f"{path}: {exc}") from None
    try:
        return merge(builtin_providers(settings), layers)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
