"""`ccp model`: the manual model override (routing row 2), persisted in `<config home>/model`.

- `ccp model` prints the override in force and where it comes from (`CCP_MODEL` beats the file);
- `ccp model NAME` writes NAME (a catalog route name or a plain model id) to the file;
- `ccp model --clear` removes the file.

The shim reads the override once, at start (Settings): a running shim needs `ccp restart` to see a
change. `<config home>` is `CCP_CONFIG_HOME`, else `~/.config/ccp`.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Mapping

from proxy.settings import MODEL_FILE, ConfigError, Settings

_MODEL_RE = re.compile(r"^\S{1,200}$")


def describe(name: str, settings: Settings) -> str:
    """Where a request goes under override `name` (the same rule as proxy.routing.decide row 2)."""
    route = settings.catalog.match(name)
    if route is None:
        return f"anthropic lane, model {name} (not a catalog route)"
    return (f"route {route.name} -> provider {route.provider}, model {route.upstream_model or name} "
            f"(from {route.source})")


def model_file(settings: Settings) -> Path:
    if not settings.config_home:
        raise ConfigError("CCP_CONFIG_HOME='': no config home (set CCP_CONFIG_HOME or HOME)")
    return Path(settings.config_home) / MODEL_FILE


def show(settings: Settings) -> int:
    if not settings.model_override:
        print("no manual override: requests are routed by the table")
        return 0
    print(f"manual override: {settings.model_override} (from {settings.model_override_source})")
    print(f"  -> {describe(settings.model_override, settings)}")
    return 0


def set_model(settings: Settings, name: str) -> int:
    name = name.strip()
    if not _MODEL_RE.match(name):
        print(f"UsageError: model {name!r}: expected a route name or model id (no spaces)",
              file=sys.stderr)
        return 2
    path = model_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(name + "\n", encoding="utf-8")
    tmp.replace(path)  # atomic: a starting shim never reads half a name
    print(f"manual override set: {name} -> {describe(name, settings)}")
    print(f"  written to {path}; restart a running shim (ccp restart) to apply it")
    _warn_env(settings)
    return 0


def clear(settings: Settings) -> int:
    path = model_file(settings)
    if path.exists():
        path.unlink()
        print(f"manual override cleared: removed {path}; restart a running shim (ccp restart)")
    else:
        print(f"no override file at {path}: nothing to clear")
    _warn_env(settings)
    return 0


def _warn_env(settings: Settings) -> None:
    if settings.model_override_source == "CCP_MODEL":
        print(f"note: CCP_MODEL={settings.model_override} is set and takes precedence over the file")


def main(argv: list[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ccp model",
                                     description="Show, set or clear the manual model override.")
    parser.add_argument("name", nargs="?", help="a catalog route name or a model id")
    parser.add_argument("--clear", action="store_true", help="remove the persisted override")
    args = parser.parse_args(argv)
    if args.clear and args.name:
        parser.error("give NAME or --clear, not both")
    settings = Settings.from_env(env)
    if args.clear:
        return clear(settings)
    if args.name is not None:
        return set_model(settings, args.name)
    return show(settings)
