"""The `ccp` command line: thin verbs over the library.

Exit codes: 0 ok, 1 a gate or check failed, 2 a usage or configuration error (printed as
`Type: message`). Each verb parses its own arguments and calls one function.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib
import sys
import time
from typing import NamedTuple

from proxy.config.load import (
    FILE_HINTS,
    existing_file,
    load_settings,
    with_licence_pack,
)
from proxy.core.parse import ConfigError, parse_base_url

DEFAULT_PORT = 18080


def serve_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="ccp serve", description="Run the routing shim.")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default %(default)s)")
    parser.add_argument(
        "--port",
        type=int,
        default=None,
        help="port to bind (default: the CCP_PROFILE's port, 18080 for default); "
        "0 lets the OS choose (announced on stdout)",
    )
    parser.add_argument("--port-file", help="also write the bound port to this file")
    parser.add_argument(
        "--insecure-bind",
        action="store_true",
        help="serve a non-loopback --host without CCP_ADMIN_TOKEN (CCP_INSECURE_BIND=1)",
    )
    parser.add_argument(
        "--license-pack",
        metavar="FILE",
        help="licence pack to run with (overrides CC_LICENSE_PACK and the others)",
    )
    parser.add_argument("--policy-url", metavar="URL", help="signed policy pack (CCP_POLICY_URL)")
    parser.add_argument(
        "--policy-pubkey",
        metavar="FILE",
        help="file with the policy's base64 public key (CCP_POLICY_PUBKEY)",
    )
    args = parser.parse_args(argv)
    settings = load_settings()
    if args.license_pack:
        settings = with_licence_pack(settings, args.license_pack, time.time())
    if args.policy_url:
        settings = dataclasses.replace(
            settings, policy_url=parse_base_url("--policy-url", args.policy_url)
        )
    if args.policy_pubkey:
        settings = dataclasses.replace(
            settings,
            policy_pubkey=existing_file(
                "--policy-pubkey", args.policy_pubkey, FILE_HINTS["policy_pubkey"]
            ),
        )
    from proxy.config.profiles import bind_problem
    from proxy.server.serve import bind_refusal, run

    refused = bind_refusal(settings, args.host, args.insecure_bind)
    if refused:
        print(refused, file=sys.stderr)
        return 2
    port = settings.default_port if args.port is None else args.port
    problem = bind_problem(
        args.host,
        port,
        "`ccp ps` shows a background shim of this profile; pick "
        "another with --port or stop what holds it",
    )
    if problem:
        print(problem, file=sys.stderr)
        return 1
    return run(settings, args.host, port, args.port_file)


def logs_rotate_main(argv: list[str]) -> int:
    import argparse

    from proxy.sinks.usage_log import rotate_usage

    argparse.ArgumentParser(
        prog="ccp logs-rotate", description="Rotate usage.jsonl now (a running shim follows)."
    ).parse_args(argv)
    settings = load_settings()
    rotated = rotate_usage(settings.logs_dir)
    print(f"rotated to {rotated}" if rotated else f"nothing to rotate in {settings.logs_dir}")
    return 0


class Verb(NamedTuple):
    target: (
        str  # "module:function", the function taking the verb's argv and returning its exit code
    )
    help: str


VERBS: dict[str, Verb] = {  # the shim's own; the harness and the reports add theirs (plugin_verbs)
    "serve": Verb("proxy.cli.main:serve_main", "run the routing shim"),
    "providers": Verb(
        "proxy.cli.providers:main",
        "the providers the shim routes to, with the source of each; "
        "`providers reload`: the running shim re-reads its files",
    ),
    "partials": Verb(
        "proxy.sinks.partials:main", "list broken streams kept under logs/partials, or `clean` them"
    ),
    "trajectories": Verb(
        "proxy.sinks.trajectory:main",
        "trajectories merge DIR… --out DIR: several shims' folders as one view per session",
    ),
    "logs-rotate": Verb(
        "proxy.cli.main:logs_rotate_main", "rotate logs/usage.jsonl now (keeps five)"
    ),
    "up": Verb(
        "proxy.cli.control:up_main",
        "start the shim in the background (pid and log files in the profile's logs)",
    ),
    "down": Verb("proxy.cli.control:down_main", "stop the background shim"),
    "restart": Verb(
        "proxy.cli.control:restart_main", "down + up (keeps the port unless --port is given)"
    ),
    "ps": Verb(
        "proxy.cli.control:ps_main",
        "one line: running?, pid, port, profile; exit 1 when not running",
    ),
    "env": Verb(
        "proxy.cli.control:env_main",
        "shell exports that point Claude Code at the shim (--unset to undo)",
    ),
    "logs": Verb(
        "proxy.cli.logview:logs_main", "usage records in a readable form (-n N, --follow, --raw)"
    ),
    "shell-init": Verb(
        "proxy.cli.control:shell_init_main",
        "shell functions ccc-on/off/status/logs/restart, ccp-haiku/sonnet",
    ),
    "doctor": Verb(
        "proxy.cli.doctor:main", "what is missing for each path (mock repro, real API, CLI probes)"
    ),
    "license": Verb(
        "proxy.cli.licence:main", "signed licences: license set|status|login|issuer|keygen"
    ),
    "status": Verb(
        "proxy.cli.usage:status_main",
        "quota table: rolling %, weekly %, warn/block, tokens/s, peak hour",
    ),
    "usage": Verb(
        "proxy.cli.usage:usage_main", "quota usage per model; --banner: a one-line meter"
    ),
    "quotas": Verb(
        "proxy.cli.usage:quotas_main", "quotas reload [FILE]: hot-reload the running shim's quotas"
    ),
    "db": Verb(
        "proxy.cli.usage:db_main",
        "the SQLite usage store: db status|export --csv F|import --jsonl F|merge DIR --out DIR",
    ),
    "mitm": Verb(
        "proxy.mitm.run:main",
        "HTTPS_PROXY mode: mitmproxy with the ccp addon (--port 8082); `mitm env`",
    ),
    "model": Verb(
        "proxy.cli.override:main",
        "the manual model override: model [NAME | --clear], on the running shim "
        "and kept for the next start",
    ),
    "pause": Verb(
        "proxy.cli.controls:pause_main",
        "kill switch: the running shim sends everything to anthropic from now",
    ),
    "resume": Verb(
        "proxy.cli.controls:resume_main", "end a pause: the running shim routes by the table again"
    ),
    "set": Verb(
        "proxy.cli.controls:set_main",
        "a runtime control of the running shim: set zai-header-mode MODE",
    ),
}

PLUGIN_GROUP = "ccp.verbs"  # entry points whose object is a {name: (target, help)} table


def plugin_verbs() -> dict[str, Verb]:
    """The verbs other installed packages bring (harness.verbs, reports.verbs), by entry point."""
    from importlib.metadata import entry_points  # only when a verb is not our own: `serve` skips it

    verbs: dict[str, Verb] = {}
    for point in sorted(entry_points(group=PLUGIN_GROUP), key=lambda p: p.name):
        for name, (target, help_) in point.load().items():
            verbs.setdefault(name, Verb(target, help_))
    return verbs


def all_verbs() -> dict[str, Verb]:
    return {**plugin_verbs(), **VERBS}


EXTRA_HINTS = {  # the package a verb lives in -> how to install what its imports need
    "harness": "pip install 'ccp[harness]' (make venv installs every extra)",
    "reports": "pip install 'ccp[reports]' (make venv installs every extra)",
    "proxy": "make venv (mitmproxy: pip install --no-deps -r requirements-mitm.txt)",
}


def run_verb(verb: Verb, argv: list[str]) -> int:
    module, _, function = verb.target.partition(":")
    try:
        return getattr(importlib.import_module(module), function)(argv)
    except (
        ModuleNotFoundError
    ) as exc:  # a verb whose extra is not installed: one line, no traceback
        missing = (exc.name or "").partition(".")[0]
        if not missing or missing in EXTRA_HINTS:  # our own code is broken: show the traceback
            raise
        print(
            f"MissingDependency: this verb needs {missing!r}, which is not installed; "
            f"{EXTRA_HINTS.get(module.partition('.')[0], 'make venv')}",
            file=sys.stderr,
        )
        return 2


def _usage() -> str:
    lines = [
        "usage: ccp VERB [ARGS]   (ccp VERB --help for its options; ccp --version)",
        "",
        "verbs:",
    ]
    lines += [f"  {name:<16}{verb.help}" for name, verb in VERBS.items()]
    extra = plugin_verbs()
    if extra:
        lines += ["", "verbs of the harness and the reports:"]
        lines += [f"  {name:<16}{verb.help}" for name, verb in extra.items() if name not in VERBS]
    return "\n".join(lines)


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("ccp")
    except PackageNotFoundError:
        return "unknown"


def _quiet_broken_pipe() -> int:
    """The reader of our stdout went away (`ccp logs | head`): no traceback, as a Unix tool does.
    stdout is pointed at /dev/null so the interpreter's last flush does not complain either."""
    import os

    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 141  # 128 + SIGPIPE, what the shell reports for a writer killed by it


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        if not argv or argv[0] in ("-h", "--help", "help"):
            print(_usage())
            return 0 if argv else 2
        if argv[0] in ("-V", "--version", "version"):
            print(f"ccp {version()}")
            return 0
        verb, rest = argv[0], argv[1:]
        verbs = VERBS if verb in VERBS else all_verbs()
        if verb not in verbs:
            print(f"UsageError: unknown verb {verb!r}\n{_usage()}", file=sys.stderr)
            return 2
        try:
            code = run_verb(verbs[verb], rest)
        except ConfigError as exc:
            print(f"ConfigError: {exc}", file=sys.stderr)
            return 2
        sys.stdout.flush()  # a broken pipe shows here, inside the handler, not at exit
        return code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return _quiet_broken_pipe()


if __name__ == "__main__":
    raise SystemExit(main())
