"""`ccp license …`: store, inspect and obtain signed licence packs; run the issuer.

- `ccp license set [FILE|-]`   validate a pack (file or stdin) and store it as
                               ``<config home>/license.pack`` (mode 0600); `--force` stores an invalid one
- `ccp license status`         the licence a shim would start with: plan, kid, features, expiry, days
                               left, source; exit 1 when there is no valid licence
- `ccp license login --issuer URL [--invite CODE] [--email E] [--no-browser] [--loopback]`
                               device-style login: ask the issuer for a code, let a person approve it
                               in the browser (or approve directly with `--invite`), poll for the pack,
                               store it. `--loopback` waits for the browser's redirect to a 127.0.0.1
                               listener instead of polling blind.
- `ccp license issuer …`       the issuer service (proxy.licence.issuer)
- `ccp license keygen --out FILE`  a new issuer seed (written 0600) and its public key on stdout
A running shim reads the licence at start: restart it (`ccp restart`) after set/login.
"""

from __future__ import annotations

import argparse
import getpass
import http.server
import json
import os
import socket
import sys
import threading
import time
import webbrowser
from collections.abc import Mapping
from pathlib import Path

import httpx

from proxy.config.load import load_settings
from proxy.config.settings import Settings
from proxy.core.parse import ConfigError
from proxy.licence.verify import (
    PACK_FILE,
    LicenceState,
    generate_seed,
    iso,
    offload_reason,
    parse_pack,
    private_key_from_seed,
    public_key_b64,
    verify,
)

HTTP_TIMEOUT = 10.0


def pack_path(settings: Settings) -> Path:
    if not settings.config_home:
        raise ConfigError("CCP_CONFIG_HOME='': no config home (set CCP_CONFIG_HOME or HOME)")
    return Path(settings.config_home) / PACK_FILE


def store(settings: Settings, pack: dict) -> Path:
    """Write the pack atomically, readable by its owner only."""
    path = pack_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(pack, fh, sort_keys=True, indent=2)
        fh.write("\n")
    tmp.replace(path)
    return path


def describe(state: LicenceState, enforced: bool, now: float) -> list[str]:
    """Human lines for a licence state (never a key or a signature)."""
    if not state.ok and state.plan is None:
        detail = f" ({state.detail})" if state.detail else ""
        lines = [
            f"licence: {state.reason}{detail}" + (f" from {state.source}" if state.source else "")
        ]
    else:
        verdict = "valid" if state.ok else f"rejected: {state.reason}"
        days = (state.expires_at - now) / 86400 if state.expires_at is not None else 0
        lines = [
            f"licence: {verdict}" + (f" (from {state.source})" if state.source else ""),
            f"  plan: {state.plan}",
            f"  kid: {state.kid}",
            f"  subject: {state.subject}",
            f"  features: {', '.join(state.features) or '-'}",
            f"  expires: {iso(state.expires_at)} ({int(days)} days left)"
            if days > 0
            else f"  expires: {iso(state.expires_at)} (expired)",
        ]
    blocked = offload_reason(state)
    lines.append(
        f"  enforcement: {'on' if enforced else 'off'}"
        + (f" -> haiku stays on anthropic ({blocked})" if enforced and blocked else "")
    )
    return lines


def cmd_set(settings: Settings, source: str, force: bool, now: float) -> int:
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
        pack = parse_pack(text)
    except (OSError, ValueError) as exc:
        print(f"ValueError: {exc}", file=sys.stderr)
        return 2
    state = verify(pack, settings.trusted_licence_keys(), now, source=source)
    if not state.ok and not force:
        print("\n".join(describe(state, settings.licence_enforce, now)))
        print(f"not stored: {state.reason} (use --force to store it anyway)", file=sys.stderr)
        return 1
    path = store(settings, pack)
    print("\n".join(describe(state._replace(source=str(path)), settings.licence_enforce, now)))
    print(f"stored {path}; restart a running shim (ccp restart) to apply it")
    return 0


def cmd_status(settings: Settings, now: float) -> int:
    print("\n".join(describe(settings.licence, settings.licence_enforce, now)))
    return 0 if settings.licence.ok else 1


class _Callback(http.server.BaseHTTPRequestHandler):
    """The loopback listener: the browser lands here after approval."""

    done = threading.Event()

    def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
        if self.path.startswith("/callback"):
            type(self).done.set()
            body = b"ccp: login approved, you can close this window.\n"
            self.send_response(200)
        else:
            body = b"not found\n"
            self.send_response(404)
        self.send_header("content-type", "text/plain")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:  # quiet: the CLI prints what matters
        pass


def _error(resp: httpx.Response) -> str:
    try:
        body = resp.json()
        return f"{body.get('error')}: {body.get('message')}"
    except ValueError:
        return f"HTTP {resp.status_code}"


def login(
    settings: Settings,
    issuer: str,
    invite: str | None,
    email: str | None,
    open_browser: bool,
    loopback: bool,
    timeout: float,
    now_fn=time.time,
) -> int:
    issuer = issuer.rstrip("/")
    listener = None
    request: dict = {}
    if loopback:
        handler = type("Callback", (_Callback,), {"done": threading.Event()})
        listener = http.server.HTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=listener.serve_forever, daemon=True).start()
        request["redirect_uri"] = f"http://127.0.0.1:{listener.server_address[1]}/callback"
    try:
        with httpx.Client(timeout=HTTP_TIMEOUT, trust_env=False) as client:
            resp = client.post(f"{issuer}/v1/device/code", json=request)
            if resp.status_code != 200:
                print(f"LoginError: {_error(resp)}", file=sys.stderr)
                return 1
            grant = resp.json()
            print(
                f"To activate ccp, open {grant['verification_uri']} and enter the code "
                f"{grant['user_code']}",
                flush=True,
            )
            if open_browser and not invite:
                webbrowser.open(grant["verification_uri_complete"])
            if invite:  # non-interactive: do what the browser page would
                ok = client.post(
                    f"{issuer}/v1/device/approve",
                    json={
                        "user_code": grant["user_code"],
                        "invite_code": invite,
                        "email": email or f"{getpass.getuser()}@{socket.gethostname()}",
                    },
                )
                if ok.status_code != 200:
                    print(f"LoginError: {_error(ok)}", file=sys.stderr)
                    return 1
                if loopback and ok.json().get("redirect_to"):
                    client.get(ok.json()["redirect_to"])  # as the browser would be redirected
            pack = _poll(client, issuer, grant, timeout, listener, now_fn)
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        print(f"LoginError: issuer {issuer}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        if listener is not None:
            listener.shutdown()
            listener.server_close()
    if pack is None:
        return 1
    state = verify(pack, settings.trusted_licence_keys(), now_fn(), source=issuer)
    if not state.ok and state.reason != "unknown_kid":
        print(f"LoginError: the issuer's pack was rejected: {state.reason}", file=sys.stderr)
        return 1
    path = store(settings, pack)
    print("\n".join(describe(state._replace(source=str(path)), settings.licence_enforce, now_fn())))
    if state.reason == "unknown_kid":
        print(f"note: kid {state.kid!r} is not trusted here yet: add it to CCP_LICENSE_PUBKEY_B64")
    print(f"stored {path}; restart a running shim (ccp restart) to apply it")
    return 0


def _poll(
    client: httpx.Client,
    issuer: str,
    grant: dict,
    timeout: float,
    listener: http.server.HTTPServer | None,
    now_fn,
) -> dict | None:
    deadline = now_fn() + timeout
    interval = max(float(grant.get("interval", 2)), 0.05)
    if listener is not None:  # the redirect says approval happened; then one token call suffices
        done = listener.RequestHandlerClass.done  # type: ignore[attr-defined]
        while not done.wait(0.1):
            if now_fn() >= deadline:
                print("LoginError: timed out waiting for the browser", file=sys.stderr)
                return None
    while True:
        resp = client.post(f"{issuer}/v1/device/token", json={"device_code": grant["device_code"]})
        if resp.status_code == 200:
            return resp.json()
        if resp.status_code not in (400, 428) or "authorization_pending" not in resp.text:
            print(f"LoginError: {_error(resp)}", file=sys.stderr)
            return None
        if now_fn() + interval >= deadline:
            print("LoginError: timed out waiting for approval", file=sys.stderr)
            return None
        time.sleep(interval)  # the device flow's own pacing, set by the issuer


def cmd_keygen(out: str) -> int:
    path = Path(out)
    if path.exists():
        print(f"UsageError: {out} exists; not overwriting a key", file=sys.stderr)
        return 2
    seed = generate_seed()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(seed + "\n")
    print(public_key_b64(private_key_from_seed(seed)))
    return 0


def main(argv: list[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["issuer"]:  # its own parser (and no Settings: it is not a shim)
        from proxy.licence.issuer import main as issuer_main

        return issuer_main(argv[1:])
    parser = argparse.ArgumentParser(prog="ccp license", description="Signed licences.")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_set = sub.add_parser("set", help="validate and store a licence pack")
    p_set.add_argument("file", nargs="?", default="-", help="pack file (default: stdin)")
    p_set.add_argument("--force", action="store_true", help="store even if it does not verify")
    sub.add_parser("status", help="the licence a shim would start with")
    p_login = sub.add_parser("login", help="device-style login against an issuer")
    p_login.add_argument("--issuer", required=True, help="issuer base URL")
    p_login.add_argument("--invite", help="approve with this invite code (no browser needed)")
    p_login.add_argument("--email", help="subject of the licence (default user@host)")
    p_login.add_argument("--no-browser", action="store_true", help="print the URL and code only")
    p_login.add_argument(
        "--loopback",
        action="store_true",
        help="wait for the browser's redirect on a 127.0.0.1 listener",
    )
    p_login.add_argument("--timeout", type=float, default=300.0, help="seconds to wait (300)")
    sub.add_parser("issuer", help="run the issuer service (see ccp license issuer --help)")
    p_key = sub.add_parser("keygen", help="a new issuer seed file and its public key")
    p_key.add_argument("--out", required=True, help="where to write the seed (0600)")
    args = parser.parse_args(argv)
    if args.cmd == "keygen":
        return cmd_keygen(args.out)
    settings = load_settings(env)
    now = time.time()
    if args.cmd == "set":
        return cmd_set(settings, args.file, args.force, now)
    if args.cmd == "status":
        return cmd_status(settings, now)
    return login(
        settings,
        args.issuer,
        args.invite,
        args.email,
        not args.no_browser,
        args.loopback,
        args.timeout,
    )
