"""`ccp mitm`: run mitmproxy (the library) with the ccp addon; `ccp mitm env`: the shell side.

    ccp mitm [--host 127.0.0.1] [--port 8082] [--port-file F] [--admin-port 0] [--confdir DIR]
    ccp mitm env [--port 8082] [--unset]

The proxy listens on `--port` (0: the OS chooses) and announces itself as one JSON line on stdout,
like `ccp serve`: `{"event": "listening", "port": …, "admin_port": …, "ca_cert": …}`. The admin
port serves the shim's own front door — the pipeline the addon sends every model flow to, and
`/healthz`, `/readyz`, `/metrics`, the usage, quota and control endpoints — so both front doors
route, convert, retry, fall back and record alike (proxy.mitm.addon). Upstream TLS is verified
against certifi's roots plus `CCP_CA_BUNDLE` / `SSL_CERT_FILE`; HTTP/2 is offered
unless `MITM_FORCE_H1` (or `CCP_FORCE_H1`). mitmproxy keeps its CA in `--confdir` (`CCP_MITM_CONFDIR`,
default `~/.mitmproxy`); `ccp mitm env` makes that CA when it is missing, so the path it prints for
`NODE_EXTRA_CA_CERTS` always exists.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shlex
import signal
import sys
import time
from pathlib import Path

from proxy.config.load import load_settings
from proxy.config.settings import Settings
from proxy.core.parse import ConfigError

log = logging.getLogger("ccp.mitm")

DEFAULT_PORT = 8082
CA_NAME = "mitmproxy"  # mitmproxy's own file names: <confdir>/mitmproxy-ca-cert.pem
UPSTREAM_CAS = "ccp-upstream-cas.pem"
# what a shell pointed at the shim has set, and HTTPS_PROXY mode must not have
UNSET = ("ANTHROPIC_BASE_URL", "ANTHROPIC_AUTH_TOKEN")


def ca_cert_path(confdir: str | os.PathLike) -> Path:
    return Path(confdir) / f"{CA_NAME}-ca-cert.pem"


def ensure_ca(confdir: str | os.PathLike) -> Path:
    """mitmproxy's CA in `confdir` (made now if missing); returns the certificate's path."""
    from mitmproxy.certs import CertStore

    Path(confdir).mkdir(parents=True, exist_ok=True)
    CertStore.from_store(str(confdir), CA_NAME, 2048)
    return ca_cert_path(confdir)


def env_lines(host: str, port: int, ca_cert: str | os.PathLike, unset: bool = False) -> list[str]:
    """The shell lines that send Claude Code through `ccp mitm` (or, with `unset`, back)."""
    if unset:
        return ["unset HTTPS_PROXY NODE_EXTRA_CA_CERTS"]
    return [
        f"export HTTPS_PROXY={shlex.quote(f'http://{host}:{port}')}",
        f"export NODE_EXTRA_CA_CERTS={shlex.quote(str(ca_cert))}",
        f"unset {' '.join(UNSET)}",
    ]


def upstream_trust(settings: Settings, confdir: str | os.PathLike) -> str | None:
    """A PEM file for mitmproxy's upstream verification: certifi's roots plus CCP_CA_BUNDLE (added,
    never replacing them, as in the shim), or None for mitmproxy's default (certifi)."""
    if not settings.ca_bundle:
        return None
    from proxy.upstream.tls import ca_files  # the shim's own trust, as one file for mitmproxy

    out = Path(confdir) / UPSTREAM_CAS
    out.write_bytes(b"\n".join(Path(f).read_bytes() for f in ca_files(settings)))
    return str(out)


def default_port() -> int:
    """MITM_PORT (the mitm router's own variable), else 8082."""
    raw = os.environ.get("MITM_PORT", "").strip()
    if not raw:
        return DEFAULT_PORT
    if not raw.isdigit() or not 0 <= int(raw) <= 65535:
        raise ConfigError(f"MITM_PORT={raw!r}: expected a port number")
    return int(raw)


def _env_main(argv: list[str], settings: Settings) -> int:
    p = argparse.ArgumentParser(
        prog="ccp mitm env", description="Shell lines for HTTPS_PROXY mode (eval them)."
    )
    p.add_argument("--host", default="127.0.0.1", help="the proxy's address (default %(default)s)")
    p.add_argument(
        "--port",
        type=int,
        default=default_port(),
        help=f"the proxy's port (default: MITM_PORT, else {DEFAULT_PORT})",
    )
    p.add_argument("--confdir", default=None, help="mitmproxy's CA folder (CCP_MITM_CONFDIR)")
    p.add_argument("--unset", action="store_true", help="the lines that undo it")
    args = p.parse_args(argv)
    ca = (
        ca_cert_path(args.confdir or settings.mitm_confdir)
        if args.unset
        else ensure_ca(args.confdir or settings.mitm_confdir)
    )
    print("\n".join(env_lines(args.host, args.port, ca, args.unset)))
    return 0


def main(argv: list[str]) -> int:
    settings = load_settings()
    if argv[:1] == ["env"]:
        return _env_main(argv[1:], settings)
    p = argparse.ArgumentParser(
        prog="ccp mitm",
        description="HTTPS_PROXY mode: mitmproxy with the ccp routing addon. "
        "`ccp mitm env` prints the shell side.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s)")
    p.add_argument(
        "--port",
        type=int,
        default=default_port(),
        help=f"port to listen on (default: MITM_PORT, else {DEFAULT_PORT}; 0: the OS chooses, "
        "announced)",
    )
    p.add_argument("--port-file", help="also write the bound port to this file")
    p.add_argument(
        "--admin-port",
        type=int,
        default=0,
        help="the pipeline and the shim's endpoints: /v1/messages, /healthz, /metrics, the "
        "usage and control APIs (default 0: the OS chooses, announced)",
    )
    p.add_argument("--confdir", default=None, help="mitmproxy's CA folder (CCP_MITM_CONFDIR)")
    p.add_argument(
        "--insecure-bind",
        action="store_true",
        help="serve a non-loopback --host without CCP_ADMIN_TOKEN (CCP_INSECURE_BIND=1)",
    )
    args = p.parse_args(argv)
    from proxy.config.profiles import bind_problem
    from proxy.server.serve import bind_refusal

    refused = bind_refusal(settings, args.host, args.insecure_bind)
    if refused:
        print(refused, file=sys.stderr)
        return 2

    problem = bind_problem(
        args.host,
        args.port,
        "another ccp mitm or shim? pick another with --port or MITM_PORT, or stop what holds it",
    )
    if problem:
        print(problem, file=sys.stderr)
        return 1
    try:
        import mitmproxy  # noqa: F401 - installed by `make venv` from requirements-mitm.txt
    except ImportError:
        print(
            "ConfigError: mitmproxy is not installed: run `make venv` (or `pip install --no-deps "
            "-r requirements-mitm.txt`)",
            file=sys.stderr,
        )
        return 2
    from proxy.mitm.addon import parse_filter_chain

    try:
        parse_filter_chain(settings.mitm_filter_chain)
    except ValueError as exc:
        raise ConfigError(f"MITM_FILTER_CHAIN: {exc}") from None
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s"
    )
    from proxy.server.serve import prepare, run_loop
    from proxy.sinks.usage_log import check_writable

    check_writable(settings.logs_dir)  # as `ccp serve`: a read-only logs folder is a ConfigError
    settings = prepare(settings, time.time())
    run_loop(
        serve(
            settings,
            args.host,
            args.port,
            args.admin_port,
            args.confdir or settings.mitm_confdir,
            args.port_file,
        )
    )
    return 0


async def serve(
    settings: Settings,
    host: str,
    port: int,
    admin_port: int,
    confdir: str,
    port_file: str | None = None,
) -> None:
    from aiohttp import web
    from mitmproxy import options
    from mitmproxy.tools.dump import DumpMaster

    from proxy.mitm.addon import CcpRouter
    from proxy.pipeline.state import STATE
    from proxy.server.app import create_app
    from proxy.server.connections import BoundedRunner

    ca = ensure_ca(confdir)
    # the pipeline: the shim's own front door, on the admin port (also /healthz, /readyz,
    # /metrics, the usage and control endpoints); mitmproxy sends it the model flows
    app = create_app(settings, mode="mitm")
    app[STATE].trust.bind(host)  # (the addon sends the model flows to http://<host>:<port>)
    runner = BoundedRunner(app, settings, handler_cancellation=True, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, admin_port).start()
    bound_admin = runner.addresses[0][1]
    router = CcpRouter(settings, f"http://{host}:{bound_admin}")
    opts = options.Options(listen_host=host, listen_port=port, confdir=confdir)
    master = DumpMaster(opts, with_termlog=False, with_dumper=False)
    # lazy: a CONNECT to api.anthropic.com opens no connection there; the routed request decides.
    # The upstream trust is for the flows mitmproxy itself sends on (not model calls).
    master.options.update(
        connection_strategy="lazy",
        http2=not settings.force_h1,
        ssl_verify_upstream_trusted_ca=upstream_trust(settings, confdir),
    )
    announced = asyncio.get_running_loop().create_future()
    master.addons.add(router, _Announce(announced))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, master.shutdown)
    running = asyncio.ensure_future(master.run())
    done, _ = await asyncio.wait({running, announced}, return_when=asyncio.FIRST_COMPLETED)
    if announced in done:
        bound = announced.result()
        if port_file:
            Path(port_file).write_text(f"{bound}\n")
        print(
            json.dumps(
                {
                    "event": "listening",
                    "mode": "mitm",
                    "host": host,
                    "port": bound,
                    "pid": os.getpid(),
                    "url": f"http://{host}:{bound}",
                    "admin_port": bound_admin,
                    "ca_cert": str(ca),
                }
            ),
            flush=True,
        )
        log.info(
            "[ccp mitm] listening on %s:%d, CA %s, filter chain %r, pipeline on :%d",
            host,
            bound,
            ca,
            settings.mitm_filter_chain,
            bound_admin,
        )
    try:
        await running
    finally:
        await runner.cleanup()


class _Announce:
    """Resolves a future with the proxy's bound port once mitmproxy's servers are up."""

    def __init__(self, future: asyncio.Future) -> None:
        self._future = future

    def running(self) -> None:
        from mitmproxy import ctx

        servers = ctx.master.addons.get("proxyserver").servers
        ports = [addr[1] for server in servers for addr in server.listen_addrs]
        if not self._future.done():
            if ports:
                self._future.set_result(ports[0])
            else:
                self._future.set_exception(RuntimeError("mitmproxy did not start its proxy server"))
