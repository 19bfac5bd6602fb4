"""`ccp pause`, `ccp resume`, `ccp set zai-header-mode MODE`, `ccp providers reload`: runtime
controls applied to the running shim (proxy.server.admin_api), and the `controls:` block of `ccp status`.

The shim is the profile's running one (its port file, as `proxy.cli.client.shim_url` finds it) or
`--url`; `CCP_ADMIN_TOKEN` is sent when set. `ask()` is the one HTTP call; every verb prints one
line. When no shim answers that line says so (`NotRunning`, exit 1) and nothing changed. Exit 2 for
a value the shim refuses or a missing admin token, 1 for anything else that did not apply.
`ccp model` (proxy.cli.override) uses the same calls.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any, NamedTuple, TextIO

import httpx

from proxy.cli.client import admin_headers, shim_url
from proxy.config.load import load_settings
from proxy.config.settings import Settings
from proxy.core.parse import ConfigError
from proxy.pipeline import controls as rc
from proxy.server.admin_api import ACTOR_HEADER, CONTROLS_PATH, PROVIDERS_RELOAD_PATH

TIMEOUT = 10.0


class Reply(NamedTuple):
    """What the shim at `url` answered: `status` None when nobody answered (`problem` says why)."""

    url: str
    status: int | None
    data: dict
    problem: str | None = None


def ask(
    settings: Settings,
    url: str | None,
    method: str,
    path: str,
    body: Any = None,
    actor: str | None = None,
) -> Reply:
    """One admin call to the running shim (its error JSON's message becomes `problem`)."""
    base = shim_url(settings, url)
    headers = {**admin_headers(settings), **({ACTOR_HEADER: actor} if actor else {})}
    try:
        resp = httpx.request(
            method, f"{base}{path}", json=body, headers=headers, timeout=TIMEOUT, trust_env=False
        )
    except httpx.HTTPError as exc:
        return Reply(base, None, {}, f"{type(exc).__name__}: {exc}")
    try:
        data = resp.json()
    except ValueError:
        data = {}
    data = data if isinstance(data, dict) else {}
    problem = None
    if resp.status_code != 200:
        problem = (data.get("error") or {}).get("message") or f"HTTP {resp.status_code}"
    return Reply(base, resp.status_code, data, problem)


def failed(reply: Reply, settings: Settings, nothing: str, err: TextIO) -> int:
    """Print why `reply` did not apply, as one `Type: message` line; the exit code."""
    if reply.status is None:
        print(
            f"NotRunning: no shim answers on {reply.url} (profile {settings.profile}): {nothing}",
            file=err,
        )
        return 1
    if reply.status == 400:
        print(f"UsageError: {reply.problem}", file=err)
        return 2
    if reply.status == 401:
        print(
            f"ConfigError: the shim on {reply.url} refused the admin call: {reply.problem}",
            file=err,
        )
        return 2
    if reply.status == 404:
        print(
            f"NotSupported: the shim on {reply.url} has no runtime controls (an older ccp?): "
            f"restart it with this version",
            file=err,
        )
        return 1
    print(f"ShimError: {reply.url} answered {reply.status}: {reply.problem}", file=err)
    return 1


def since(source: dict) -> str:
    """A control's origin as text: `env OFFLOAD_PAUSED`, `runtime, <ts> by POST … (ccp pause)`."""
    kind, detail = source.get("origin"), source.get("detail")
    if kind == "runtime":
        return f"runtime, {source.get('changed_at')} by {detail}"
    return f"{kind} {detail}" if detail else str(kind)


def local_settings(err: TextIO) -> Settings | None:
    """This environment's settings (the shim's URL, the admin token), or None after one line
    saying why not: a config file here that does not load stops a verb before it asks a shim."""
    try:
        return load_settings()
    except ConfigError as exc:
        print(
            f"ConfigError: {exc} (this environment's config does not load, so no shim was asked; "
            "a running shim keeps what it has)",
            file=err,
        )
        return None


# ---------------------------------------------------------------- the verbs
def set_control(
    settings: Settings | None,
    url: str | None,
    control: str,
    value: Any,
    actor: str,
    out: TextIO,
    err: TextIO,
) -> int:
    """POST one control; print what changed (or that it already was so)."""
    if settings is None:
        return 2
    reply = ask(settings, url, "POST", CONTROLS_PATH, {control: value}, actor)
    if reply.status != 200:
        return failed(reply, settings, "nothing changed", err)
    now = reply.data["controls"]
    changes = reply.data["changed"]
    if not changes:
        print(
            f"{actor}: already {_shown(control, now[control])} on {reply.url} "
            f"({since(now['sources'][control])})",
            file=out,
        )
        return 0
    effect = {
        (True, "paused"): ": every request goes to the anthropic lane",
        (False, "paused"): ": routing by the table again",
    }.get((now[control], control), "")
    before = changes[0]["from"]
    was = _shown(control, before) if control == "paused" else before or "none"
    print(
        f"{actor}: {_shown(control, now[control])} on {reply.url} from the next request "
        f"(was {was}){effect}",
        file=out,
    )
    return 0


def _shown(control: str, value: Any) -> str:
    if control == "paused":
        return "paused" if value else "not paused"
    return (
        f"{'zai header mode' if control == 'zai_header_mode' else 'model override'} "
        f"{value or 'none'}"
    )


def _url_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="the shim's base URL (default: the profile's running shim)")


def _pause_verb(argv: list[str], paused: bool, out: TextIO | None, err: TextIO | None) -> int:
    verb = "ccp pause" if paused else "ccp resume"
    description = (
        "Emergency stop of the offload: every request of the running shim goes to the "
        "anthropic lane from the next one (decision offload_paused), until `ccp resume` "
        "or a restart."
        if paused
        else "End a pause: the running shim routes by the table again from the next request."
    )
    parser = argparse.ArgumentParser(prog=verb, description=description)
    _url_argument(parser)
    args = parser.parse_args(argv)
    err = err or sys.stderr
    return set_control(
        local_settings(err), args.url, "paused", paused, verb, out or sys.stdout, err
    )


def pause_main(argv: list[str], out: TextIO | None = None, err: TextIO | None = None) -> int:
    return _pause_verb(argv, True, out, err)


def resume_main(argv: list[str], out: TextIO | None = None, err: TextIO | None = None) -> int:
    return _pause_verb(argv, False, out, err)


def set_main(argv: list[str], out: TextIO | None = None, err: TextIO | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ccp set", description="Change a runtime control of the running shim."
    )
    sub = parser.add_subparsers(
        dest="control",
        required=True,
        metavar="CONTROL",
        help="the control to change (zai-header-mode)",
    )
    mode = sub.add_parser(
        "zai-header-mode",
        help="how the zai lane sends ZAI_API_KEY",
        description="How the zai lane sends ZAI_API_KEY, from the next request "
        "(until a restart: ZAI_HEADER_MODE sets it at start).",
    )
    mode.add_argument(
        "mode",
        choices=list(rc.HEADER_MODE_CHOICES),
        help="x-api-key, or authorization: Bearer (bearer is the same)",
    )
    _url_argument(mode)
    args = parser.parse_args(argv)
    err = err or sys.stderr
    return set_control(
        local_settings(err),
        args.url,
        "zai_header_mode",
        args.mode,
        "ccp set",
        out or sys.stdout,
        err,
    )


def providers_reload(url: str | None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """`ccp providers reload`: the running shim reads its routes/providers files again."""
    out, err = out or sys.stdout, err or sys.stderr
    settings = local_settings(err)
    if settings is None:
        return 2
    reply = ask(settings, url, "POST", PROVIDERS_RELOAD_PATH, actor="ccp providers reload")
    if reply.status != 200:
        if reply.status == 400:
            print(f"ConfigError: {reply.problem}", file=err)
            return 2
        return failed(reply, settings, "nothing reloaded", err)
    new = reply.data["controls"]["providers"]
    print(
        f"ccp providers reload: {reply.url} reloaded {_catalog(new)}, from the next request",
        file=out,
    )
    return 0


def _catalog(p: dict) -> str:
    files = ", ".join(p["files"]) or "built-in lanes only"
    return (
        f"{files}: {len(p['providers'])} providers ({', '.join(p['providers'])}), "
        f"{len(p['routes'])} route(s)"
    )


# ---------------------------------------------------------------- ccp status
def controls_lines(data: dict, running: bool = True) -> list[str]:
    """The rows of the `controls:` block from a GET /v1/admin/controls body (pure)."""
    src = data["sources"]
    providers = data["providers"]
    rows = [
        ("paused", "yes: all to anthropic" if data["paused"] else "no", src["paused"]),
        ("zai header mode", data["zai_header_mode"], src["zai_header_mode"]),
        ("model override", data["model"] or "-", src["model"]),
    ]
    width = max(len(value) for _, value, _ in rows)
    lines = [f"  {name:<16} {value:<{width}}  {since(source)}" for name, value, source in rows]
    loaded = f"; loaded {providers['loaded_at']}" if running else ""
    lines.append(f"  {'providers':<16} {_catalog(providers)}{loaded} ({since(src['providers'])})")
    return lines


def print_controls(settings: Settings, url: str | None, out: TextIO) -> None:
    """The `controls:` block at the top of `ccp status`: the running shim's, else what the next
    start would use."""
    reply = ask(settings, url, "GET", CONTROLS_PATH)
    if reply.status == 200:
        print(f"controls (running shim {reply.url}):", file=out)
        lines = controls_lines(reply.data)
    elif reply.status is None:
        print(f"controls: no shim answers on {reply.url}; what the next start would use:", file=out)
        lines = controls_lines(rc.public(rc.initial(settings, time.time())), running=False)
    else:
        print(f"controls: {reply.url} answered {reply.status}: {reply.problem}", file=out)
        return
    print("\n".join(lines), file=out)
