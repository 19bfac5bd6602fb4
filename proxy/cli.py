"""The `ccp` command line: thin verbs over the library.

Exit codes: 0 ok, 1 a gate or check failed, 2 a usage or configuration error (printed as
`Type: message`). Each verb parses its own arguments and calls one function.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import sys
import time
from typing import Callable

from proxy.settings import ConfigError, Settings, parse_base_url, parse_pubkey_file

DEFAULT_PORT = 18080


def _serve(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="ccp serve", description="Run the routing shim.")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default %(default)s)")
    parser.add_argument("--port", type=int, default=None,
                        help="port to bind (default: the CCP_PROFILE's port, 18080 for default); "
                             "0 lets the OS choose (announced on stdout)")
    parser.add_argument("--port-file", help="also write the bound port to this file")
    parser.add_argument("--license-pack", metavar="FILE",
                        help="licence pack to run with (overrides CC_LICENSE_PACK and the others)")
    parser.add_argument("--policy-url", metavar="URL", help="signed policy pack (CCP_POLICY_URL)")
    parser.add_argument("--policy-pubkey", metavar="FILE",
                        help="file with the policy's base64 public key (CCP_POLICY_PUBKEY)")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    if args.license_pack:
        settings = settings.with_licence_pack(args.license_pack, time.time())
    if args.policy_url:
        settings = dataclasses.replace(settings,
                                       policy_url=parse_base_url("--policy-url", args.policy_url))
    if args.policy_pubkey:
        settings = dataclasses.replace(
            settings, policy_pubkey=parse_pubkey_file("--policy-pubkey", args.policy_pubkey))
    from proxy.profiles import bind_problem
    from proxy.server import run
    port = settings.default_port if args.port is None else args.port
    problem = bind_problem(args.host, port, "`ccp ps` shows a background shim of this profile; pick "
                           "another with --port or stop what holds it")
    if problem:
        print(problem, file=sys.stderr)
        return 1
    return run(settings, args.host, port, args.port_file)


def _mock_upstream(argv: list[str]) -> int:
    from harness.mock_upstream import main
    return main(argv)


def _summarize(argv: list[str]) -> int:
    from reports.summarize import main
    settings = Settings.from_env()
    return main(argv, default_logs_dir=settings.logs_dir, default_results_dir=settings.results_dir)


def _verify_routing(argv: list[str]) -> int:
    from reports.verify import main
    return main(argv, default_logs_dir=Settings.from_env().logs_dir)


def _gates(argv: list[str]) -> int:
    from reports.verify import gates_main
    settings = Settings.from_env()
    return gates_main(argv, default_logs_dir=settings.logs_dir,
                      default_results_dir=settings.results_dir)


def _providers(argv: list[str]) -> int:
    from proxy.providers import main
    return main(argv)


def _model(argv: list[str]) -> int:
    from proxy.override import main
    return main(argv)


def _pause(argv: list[str]) -> int:
    from proxy.controls_cli import pause_main
    return pause_main(argv)


def _resume(argv: list[str]) -> int:
    from proxy.controls_cli import resume_main
    return resume_main(argv)


def _set(argv: list[str]) -> int:
    from proxy.controls_cli import set_main
    return set_main(argv)


def _partials(argv: list[str]) -> int:
    from proxy.partials import main
    return main(argv)


def _logs_rotate(argv: list[str]) -> int:
    import argparse

    from proxy.usage import rotate_usage
    argparse.ArgumentParser(prog="ccp logs-rotate",
                            description="Rotate usage.jsonl now (a running shim follows).").parse_args(argv)
    settings = Settings.from_env()
    rotated = rotate_usage(settings.logs_dir)
    print(f"rotated to {rotated}" if rotated else f"nothing to rotate in {settings.logs_dir}")
    return 0


def _sandbox_smoke(argv: list[str]) -> int:
    from harness.sandbox.smoke import main
    return main(argv)


def _repro(argv: list[str]) -> int:
    from harness.repro import main
    return main(argv)


def _soak(argv: list[str]) -> int:
    from harness.soak import main
    return main(argv)


def _ab(argv: list[str]) -> int:
    from harness.ab import main
    return main(argv)


def _up(argv: list[str]) -> int:
    from proxy.control import up_main
    return up_main(argv)


def _down(argv: list[str]) -> int:
    from proxy.control import down_main
    return down_main(argv)


def _restart(argv: list[str]) -> int:
    from proxy.control import restart_main
    return restart_main(argv)


def _ps(argv: list[str]) -> int:
    from proxy.control import ps_main
    return ps_main(argv)


def _env(argv: list[str]) -> int:
    from proxy.control import env_main
    return env_main(argv)


def _logs(argv: list[str]) -> int:
    from proxy.logview import logs_main
    return logs_main(argv)


def _probe(argv: list[str]) -> int:
    from proxy.control import probe_main
    return probe_main(argv)


def _shell_init(argv: list[str]) -> int:
    from proxy.control import shell_init_main
    return shell_init_main(argv)


def _license(argv: list[str]) -> int:
    from proxy.license_cli import main
    return main(argv)


def _status(argv: list[str]) -> int:
    from proxy.usage_cli import status_main
    return status_main(argv)


def _usage_verb(argv: list[str]) -> int:
    from proxy.usage_cli import usage_main
    return usage_main(argv)


def _quotas(argv: list[str]) -> int:
    from proxy.usage_cli import quotas_main
    return quotas_main(argv)


def _db(argv: list[str]) -> int:
    from proxy.usage_cli import db_main
    return db_main(argv)


def _bench(argv: list[str]) -> int:
    from harness.bench.run import main
    return main(argv)


def _doctor(argv: list[str]) -> int:
    from proxy.doctor import main
    return main(argv)


def _report(argv: list[str]) -> int:
    from reports.html import main
    settings = Settings.from_env()
    return main(argv, default_logs_dir=settings.logs_dir, default_results_dir=settings.results_dir)


def _mitm(argv: list[str]) -> int:
    from proxy.mitm import main
    return main(argv)


def _bundle(argv: list[str]) -> int:
    from reports.bundle import main
    return main(argv)


VERBS: dict[str, tuple[Callable[[list[str]], int], str]] = {
    "serve": (_serve, "run the routing shim"),
    "mock-upstream": (_mock_upstream, "run a mock Anthropic-compatible upstream (no keys needed)"),
    "summarize": (_summarize, "turn usage logs into METRICS JSON and a summary"),
    "verify-routing": (_verify_routing, "print routing shares and gate verdicts; exit 1 on failure"),
    "gates": (_gates, "print gate verdicts; exit 1 on failure"),
    "report": (_report, "a self-contained HTML report (results/report.html) from logs or METRICS"),
    "bundle": (_bundle, "reviewer bundle: logs, METRICS, report, config, MANIFEST + .tgz; --prune N"),
    "providers": (_providers, "the providers the shim routes to, with the source of each; "
                              "`providers reload`: the running shim re-reads its files"),
    "partials": (_partials, "list broken streams kept under logs/partials, or `clean` them"),
    "logs-rotate": (_logs_rotate, "rotate logs/usage.jsonl now (keeps five)"),
    "sandbox-smoke": (_sandbox_smoke, "the sandboxed claude task end to end (TC_CLAUDE_PROXY_E2E_SMOKE)"),
    "repro": (_repro, "the repro job: mocks (or real upstreams), shim, probes, METRICS, gates"),
    "soak": (_soak, "haiku+sonnet probes in a loop until both lanes succeeded (make overnight)"),
    "ab": (_ab, "A/B of one toggle: shim restarted per arm, arms interleaved, results/AB-*.md"),
    "up": (_up, "start the shim in the background (pid and log files in the profile's logs)"),
    "down": (_down, "stop the background shim"),
    "restart": (_restart, "down + up (keeps the port unless --port is given)"),
    "ps": (_ps, "one line: running?, pid, port, profile; exit 1 when not running"),
    "env": (_env, "shell exports that point Claude Code at the shim (--unset to undo)"),
    "logs": (_logs, "usage records in a readable form (-n N, --follow, --raw)"),
    "probe": (_probe, "one real `claude` CLI probe through the shim: probe haiku|sonnet PROMPT"),
    "shell-init": (_shell_init, "shell functions ccc-on/off/status/logs/restart, ccp-haiku/sonnet"),
    "bench": (_bench, "the benchmark: direct, floor, ccp, LiteLLM, CCR on a mock (--quick, --targets)"),
    "doctor": (_doctor, "what is missing for each path (mock repro, real API, CLI probes)"),
    "license": (_license, "signed licences: license set|status|login|issuer|keygen"),
    "status": (_status, "quota table: rolling %, weekly %, warn/block, tokens/s, peak hour"),
    "usage": (_usage_verb, "quota usage per model; --banner: a one-line meter"),
    "quotas": (_quotas, "quotas reload [FILE]: hot-reload the running shim's quotas"),
    "db": (_db, "the SQLite usage store: db status|export --csv F|import --jsonl F|merge DIR --out DIR"),
    "mitm": (_mitm, "HTTPS_PROXY mode: mitmproxy with the ccp addon (--port 8082); `mitm env`"),
    "model": (_model, "the manual model override: model [NAME | --clear], on the running shim "
                      "and kept for the next start"),
    "pause": (_pause, "kill switch: the running shim sends everything to anthropic from now"),
    "resume": (_resume, "end a pause: the running shim routes by the table again"),
    "set": (_set, "a runtime control of the running shim: set zai-header-mode MODE"),
}


def _usage() -> str:
    lines = ["usage: ccp VERB [ARGS]   (ccp VERB --help for its options; ccp --version)", "",
             "verbs:"]
    lines += [f"  {name:<16}{help_}" for name, (_, help_) in VERBS.items()]
    return "\n".join(lines)


def version() -> str:
    from importlib.metadata import PackageNotFoundError, version as dist_version
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
        if verb not in VERBS:
            print(f"UsageError: unknown verb {verb!r}\n{_usage()}", file=sys.stderr)
            return 2
        try:
            code = VERBS[verb][0](rest)
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
