"""`ccp model`: the manual model override (routing row 2), persisted in `<config home>/model`.

- `ccp model` prints the override in force on the running shim and where it comes from (no shim:
  what the next start would use; `CCP_MODEL` beats the file);
- `ccp model NAME` sets NAME (a catalog route name or a model id some lane serves) on the running
  shim from its next request (proxy.server.admin_api) and writes it to the file, so a restart keeps it;
  a name no lane or route can serve is refused (exit 2) with the names that can be;
- `ccp model --clear` clears it on the running shim and removes the file.

With no shim running only the file changes, and it applies at the next start. `<config home>` is
`CCP_CONFIG_HOME`, else `~/.config/ccp`.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Mapping
from pathlib import Path

from proxy.cli import controls as cc
from proxy.config.load import load_settings
from proxy.config.settings import MODEL_FILE, Settings
from proxy.core.parse import ConfigError
from proxy.pipeline import controls as rc
from proxy.server.admin_api import CONTROLS_PATH

_MODEL_RE = re.compile(r"^\S{1,200}$")


def describe(name: str, settings: Settings) -> str:
    """Where a request goes under override `name` (the same rule as proxy.core.routing.decide row 2)."""
    route = settings.catalog.match(name)
    if route is None:
        return f"anthropic lane, model {name} (not a catalog route)"
    return (
        f"route {route.name} -> provider {route.provider}, model {route.upstream_model or name} "
        f"(from {route.source})"
    )


def model_file(settings: Settings) -> Path:
    if not settings.config_home:
        raise ConfigError("CCP_CONFIG_HOME='': no config home (set CCP_CONFIG_HOME or HOME)")
    return Path(settings.config_home) / MODEL_FILE


def show(settings: Settings, url: str | None = None) -> int:
    reply = cc.ask(settings, url, "GET", CONTROLS_PATH)
    if reply.status == 200:
        running = reply.data["model"]
        if running:
            print(
                f"manual override: {running} (running shim {reply.url}; "
                f"{cc.since(reply.data['sources']['model'])})"
            )
            print(f"  -> {describe(running, settings)}")
        else:
            print(
                f"no manual override on the running shim {reply.url}: requests are routed by "
                "the table"
            )
        if settings.model_override != running:
            print(
                f"  at the next start: {settings.model_override or 'none'}"
                + (f" (from {settings.model_override_source})" if settings.model_override else "")
            )
        return 0
    if reply.status is not None:
        return cc.failed(reply, settings, "", sys.stderr)
    where = f"no shim answers on {reply.url}; at the next start"
    if not settings.model_override:
        print(f"no manual override ({where}): requests are routed by the table")
        return 0
    print(
        f"manual override: {settings.model_override} (from {settings.model_override_source}; "
        f"{where})"
    )
    print(f"  -> {describe(settings.model_override, settings)}")
    return 0


def _write(path: Path, name: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(name + "\n", encoding="utf-8")
    tmp.replace(path)  # atomic: a starting shim never reads half a name


def set_model(settings: Settings, name: str, url: str | None = None) -> int:
    name = name.strip()
    if not _MODEL_RE.match(name):
        print(
            f"UsageError: model {name!r}: expected a route name or model id (no spaces)",
            file=sys.stderr,
        )
        return 2
    path = model_file(settings)
    # the running shim decides with its own catalog; without one, this environment's decides
    reply = cc.ask(settings, url, "POST", CONTROLS_PATH, {"model": name}, "ccp model")
    if reply.status is None and not rc.servable(name, settings.catalog):
        print(f"UsageError: {rc.unservable_message(name, settings.catalog)}", file=sys.stderr)
        return 2
    if reply.status not in (None, 200):
        return cc.failed(reply, settings, "nothing changed", sys.stderr)
    _write(path, name)
    print(f"manual override set: {name} -> {describe(name, settings)}")
    if reply.status == 200:
        print(
            f"  applied on the running shim {reply.url} from the next request; written to "
            f"{path} (kept across restarts)"
        )
    else:
        print(
            f"  written to {path}; no shim answers on {reply.url}: it applies when the shim starts"
        )
    _warn_env(settings)
    return 0


def clear(settings: Settings, url: str | None = None) -> int:
    path = model_file(settings)
    reply = cc.ask(settings, url, "POST", CONTROLS_PATH, {"model": None}, "ccp model --clear")
    if reply.status not in (None, 200):
        return cc.failed(reply, settings, "nothing changed", sys.stderr)
    if path.exists():
        path.unlink()
        print(f"manual override cleared: removed {path}")
    else:
        print(f"no override file at {path}: nothing to remove")
    if reply.status == 200:
        had = reply.data["changed"]
        print(
            f"  running shim {reply.url}: "
            + (
                f"override {had[0]['from']} cleared from the next request"
                if had
                else "had no override"
            )
        )
    else:
        print(f"  no shim answers on {reply.url}: nothing else to clear")
    _warn_env(settings)
    return 0


def _warn_env(settings: Settings) -> None:
    if settings.model_override_source == "CCP_MODEL":
        print(
            f"note: CCP_MODEL={settings.model_override} is set: a shim started with it uses it, "
            "not the file"
        )


def main(argv: list[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ccp model", description="Show, set or clear the manual model override."
    )
    parser.add_argument(
        "name",
        nargs="?",
        help="a catalog route name or a model id a lane serves (haiku, sonnet, "
        "opus, claude-…); without it: show the override in force",
    )
    parser.add_argument(
        "--clear",
        action="store_true",
        help="clear the override on the running shim and remove the persisted one",
    )
    parser.add_argument("--url", help="the shim's base URL (default: the profile's running shim)")
    args = parser.parse_args(argv)
    if args.clear and args.name:
        parser.error("give NAME or --clear, not both")
    settings = load_settings(env)
    if args.clear:
        return clear(settings, args.url)
    if args.name is not None:
        return set_model(settings, args.name, args.url)
    return show(settings, args.url)
