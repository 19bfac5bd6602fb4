"""The running shim's runtime controls: paused, the zai header mode, the model override and the
catalog.

A `Controls` is a frozen snapshot of the four values, where each came from (`Origin`: the
environment, a file, a policy pack, the default, or a runtime change with who made it and when) and
the files the catalog was read from. `proxy.pipeline.state.ShimState` holds the current snapshot and the
settings derived from it (`effective_settings`); a change builds the next snapshot, so a request
that read the settings keeps them to its end and the next request reads the new ones.

Everything here is pure: `initial()` from the start-time settings, `parse_updates()` checks a
`POST /v1/admin/controls` body (ValueError naming the valid choices), `changed()` and `reloaded()`
build the next snapshot and the `Change`s it makes, `servable()` says which model names an override
may name (the same rule as `proxy.core.routing.decide` row 2), `public()` is what
`GET /v1/admin/controls` answers.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from proxy.config.catalog import BUILT_IN, Catalog, user_providers_file
from proxy.config.settings import Settings
from proxy.core.record import CONTROL_OP, utc_timestamp  # noqa: F401 - CONTROL_OP: part of this vocabulary
from proxy.core.routing import LANE_ZAI, model_family

# How a control change is written in the usage log (one record per change; never a model request).
CONTROL_DECISION = "control_change"
CONTROLS = ("paused", "zai_header_mode", "model", "providers")
SETTABLE = ("paused", "zai_header_mode", "model")  # what POST /v1/admin/controls takes
# `bearer` is the catalog's own alias of `authorization` (proxy.config.catalog.HEADER_MODES)
HEADER_MODE_CHOICES = {
    "x-api-key": "x-api-key",
    "authorization": "authorization",
    "bearer": "authorization",
}
FAMILIES = ("haiku", "sonnet", "opus")
_MODEL_RE = re.compile(r"^\S{1,200}$")


class Origin(NamedTuple):
    """Where a control's value came from: `env`, `file`, `policy`, `default` or `runtime`."""

    kind: str
    detail: str | None = None  # the variable, the file(s), or who changed it at runtime
    changed_at: float | None = None  # epoch seconds of a runtime change (None: since start)

    def public(self) -> dict:
        return {
            "origin": self.kind,
            "detail": self.detail,
            "changed_at": utc_timestamp(self.changed_at) if self.changed_at else None,
        }


class Change(NamedTuple):
    """One control that changed: its name and the value before and after (JSON-friendly)."""

    control: str
    old: Any
    new: Any


@dataclass(frozen=True)
class Controls:
    paused: bool
    zai_header_mode: str
    model: str | None
    catalog: Catalog  # as the files give it; the header mode is applied by effective_settings()
    files: tuple[str, ...]  # the routes/providers files the catalog was read from
    loaded_at: float  # when those files were read
    origins: Mapping[str, Origin]  # one per name in CONTROLS


# ---------------------------------------------------------------- start
def catalog_files(settings: Settings) -> tuple[str, ...]:
    """The config files a catalog built from `settings` reads (as proxy.config.catalog.load_catalog)."""
    user = user_providers_file(settings)
    named = [
        settings.config_file,
        settings.providers_file,
        str(user) if user is not None and Path(user).is_file() else None,
    ]
    return tuple(f for f in named if f)


def _header_mode(settings: Settings) -> tuple[str, Origin]:
    """The mode the zai lane sends (its catalog entry's), and where it came from."""
    zai = settings.catalog.provider(LANE_ZAI)
    if zai is None:
        return settings.zai_header_mode, Origin("default")
    if zai.source != BUILT_IN and zai.header_mode != settings.zai_header_mode:
        return zai.header_mode, Origin("file", zai.source)
    if "zai_header_mode" in settings.routing_from_env:
        return zai.header_mode, Origin("env", "ZAI_HEADER_MODE")
    if settings.policy_url:  # a policy pack's defaults apply to what the environment left unset
        return zai.header_mode, Origin("policy", settings.policy_url)
    return zai.header_mode, Origin("default")


def initial(settings: Settings, now: float) -> Controls:
    """The controls a shim starts with: what its settings say, each with its origin."""
    if "offload_paused" in settings.routing_from_env:
        paused = Origin("env", "OFFLOAD_PAUSED")
    else:
        paused = Origin("policy", settings.policy_url) if settings.policy_url else Origin("default")
    if settings.model_override_source == "CCP_MODEL":
        model = Origin("env", "CCP_MODEL")
    elif settings.model_override:
        model = Origin("file", settings.model_override_source)
    else:
        model = Origin("default")
    mode, mode_origin = _header_mode(settings)
    files = catalog_files(settings)
    providers = Origin("file", ", ".join(files)) if files else Origin("default", BUILT_IN)
    return Controls(
        paused=settings.offload_paused,
        zai_header_mode=mode,
        model=settings.model_override,
        catalog=settings.catalog,
        files=files,
        loaded_at=now,
        origins={
            "paused": paused,
            "zai_header_mode": mode_origin,
            "model": model,
            "providers": providers,
        },
    )


# ---------------------------------------------------------------- which names an override may name
def servable(name: str, catalog: Catalog) -> bool:
    """Whether an override `name` reaches a provider that can serve it (decide() row 2): a catalog
    route's name (or a name its glob matches), else a Claude model id or alias of a family the
    anthropic lane serves."""
    return catalog.match(name) is not None or model_family(name) is not None


def servable_names(catalog: Catalog) -> list[str]:
    """One line per kind of name an override may name, with where it goes."""
    lines = [
        f"{', '.join(FAMILIES)} (aliases) and any model id of those families, e.g. "
        f"claude-sonnet-4-5 -> the anthropic lane"
    ]
    for route in catalog.routes:
        kind = "route (glob)" if route.is_glob else "route"
        model = f", model {route.upstream_model}" if route.upstream_model else ""
        lines.append(f"{route.name} -> {kind} to {route.provider}{model}")
    if not any(r.provider == LANE_ZAI for r in catalog.routes):
        lines.append("(the zai lane takes an override only through a route with provider: zai)")
    return lines


def unservable_message(name: str, catalog: Catalog) -> str:
    names = "\n".join(f"  {line}" for line in servable_names(catalog))
    return f"model {name!r}: no lane or route serves it; names that can be served:\n{names}"


# ---------------------------------------------------------------- changes
def parse_header_mode(raw: Any) -> str:
    """`x-api-key`, `authorization` or its alias `bearer` (case-insensitive) -> the mode."""
    value = raw.strip().lower() if isinstance(raw, str) else None
    if value not in HEADER_MODE_CHOICES:
        raise ValueError(
            f"zai_header_mode={raw!r}: expected one of "
            f"{', '.join(HEADER_MODE_CHOICES)} (bearer = authorization)"
        )
    return HEADER_MODE_CHOICES[value]


def parse_model(raw: Any, catalog: Catalog) -> str | None:
    """A servable model name, or None (clear the override)."""
    if raw is None:
        return None
    name = raw.strip() if isinstance(raw, str) else None
    if not name or not _MODEL_RE.match(name):
        raise ValueError(
            f"model={raw!r}: expected a route name or a model id (no spaces), "
            "or null to clear the override"
        )
    if not servable(name, catalog):
        raise ValueError(unservable_message(name, catalog))
    return name


def parse_updates(data: Any, catalog: Catalog) -> dict[str, Any]:
    """A POST /v1/admin/controls body -> {control: value}; ValueError names the valid choices."""
    if not isinstance(data, Mapping) or not data:
        raise ValueError(
            f"expected a JSON object with one or more of {', '.join(SETTABLE)}, "
            'e.g. {"paused": true}'
        )
    unknown = [k for k in data if k not in SETTABLE]
    if unknown:
        raise ValueError(
            f"unknown control {unknown[0]!r}: expected {', '.join(SETTABLE)} "
            "(providers: POST /v1/admin/providers/reload)"
        )
    updates: dict[str, Any] = {}
    if "paused" in data:
        if not isinstance(data["paused"], bool):
            raise ValueError(f"paused={data['paused']!r}: expected true or false")
        updates["paused"] = data["paused"]
    if "zai_header_mode" in data:
        updates["zai_header_mode"] = parse_header_mode(data["zai_header_mode"])
    if "model" in data:
        updates["model"] = parse_model(data["model"], catalog)
    return updates


def changed(
    controls: Controls, updates: Mapping[str, Any], by: str, now: float
) -> tuple[Controls, list[Change]]:
    """The next snapshot with `updates` (parse_updates) made by `by`; only real changes count."""
    fields: dict[str, Any] = {}
    origins = dict(controls.origins)
    changes = []
    for name, new in updates.items():
        old = getattr(controls, name)
        if old == new:
            continue
        fields[name] = new
        origins[name] = Origin("runtime", by, now)
        changes.append(Change(name, old, new))
    if not changes:
        return controls, []
    return dataclasses.replace(controls, origins=origins, **fields), changes


def catalog_summary(catalog: Catalog, files: tuple[str, ...]) -> dict:
    """What a reload record says about a catalog: its files, providers and routes (no secrets)."""
    return {
        "files": list(files),
        "providers": list(catalog.providers),
        "routes": [r.name for r in catalog.routes],
    }


def reloaded(controls: Controls, fresh: Settings, by: str, now: float) -> tuple[Controls, Change]:
    """The next snapshot with the catalog of `fresh` (settings read again from the environment and
    files). A header mode set at runtime stays; otherwise the new catalog's own applies. Raises
    ValueError when the override in force names something the new catalog cannot serve."""
    if controls.model and not servable(controls.model, fresh.catalog):
        raise ValueError(
            f"the model override {controls.model!r} in force would have nothing to "
            "serve it in the new catalog; clear or change it first (ccp model)"
        )
    files = catalog_files(fresh)
    origins = dict(controls.origins)
    origins["providers"] = Origin("runtime", by, now)
    mode = controls.zai_header_mode
    if controls.origins["zai_header_mode"].kind != "runtime":
        mode, origins["zai_header_mode"] = _header_mode(fresh)
    new = dataclasses.replace(
        controls,
        catalog=fresh.catalog,
        files=files,
        loaded_at=now,
        zai_header_mode=mode,
        origins=origins,
    )
    return new, Change(
        "providers",
        catalog_summary(controls.catalog, controls.files),
        catalog_summary(fresh.catalog, files),
    )


# ---------------------------------------------------------------- what requests read
def effective_settings(base: Settings, controls: Controls) -> Settings:
    """`base` as the controls have it: the routing toggles, the override, the catalog with the
    zai lane's header mode applied. What every request of the running shim reads."""
    catalog = controls.catalog
    zai = catalog.provider(LANE_ZAI)
    if zai is not None and zai.header_mode != controls.zai_header_mode:
        providers = {
            **catalog.providers,
            LANE_ZAI: dataclasses.replace(zai, header_mode=controls.zai_header_mode),
        }
        catalog = Catalog(providers, catalog.routes)
    origin = controls.origins["model"]
    source = {"env": "CCP_MODEL", "file": origin.detail}.get(
        origin.kind, f"runtime: {origin.detail}"
    )
    return dataclasses.replace(
        base,
        offload_paused=controls.paused,
        zai_header_mode=controls.zai_header_mode,
        model_override=controls.model,
        model_override_source=source if controls.model else None,
        catalog=catalog,
    )


def public(controls: Controls) -> dict:
    """The body of GET /v1/admin/controls."""
    return {
        "paused": controls.paused,
        "zai_header_mode": controls.zai_header_mode,
        "model": controls.model,
        "providers": {
            **catalog_summary(controls.catalog, controls.files),
            "loaded_at": utc_timestamp(controls.loaded_at),
        },
        "sources": {name: controls.origins[name].public() for name in CONTROLS},
        "choices": {
            "paused": [True, False],
            "zai_header_mode": list(HEADER_MODE_CHOICES),
            "model": servable_names(controls.catalog),
        },
    }
