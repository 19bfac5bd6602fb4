"""The licence issuer: a small aiohttp service that turns invite codes into signed licence packs.

`ccp license issuer --seed-file FILE --invites invites.yaml --port 0` (or ``--seed BASE64``)
announces ``{"event": "listening", "port": ..., "url": ..., "kid": ..., "public_key": ...}`` on stdout
(the public key is what shims trust via ``CCP_LICENSE_PUBKEY_B64=KID=BASE64``).

Invites (YAML or JSON; a list or ``{"invites": [...]}``)::

    - {code: TRIAL-2026, plan: trial, features: [zai_offload], duration: 14d, max_uses: 25}

Use counts persist in ``<invites>.state.json`` (or ``--state``), written atomically after each use.

Endpoints (JSON in, JSON out; errors are ``{"error": CODE, "message": ...}``):
  POST /v1/license/issue  {invite_code, email}  → 200 pack | 404 unknown_invite | 409 invite_used_up
                                                   | 400 bad_request
  POST /v1/device/code    {redirect_uri?}       → {device_code, user_code, verification_uri,
                                                   verification_uri_complete, interval, expires_in}
  GET  /device?user_code=…                      → the page a person opens (a form posting to approve)
  POST /v1/device/approve {user_code, invite_code, email} (JSON or form) → 200 {"status": "approved",
                                                   "redirect_to"?} | 404 unknown user_code | invite errors
  POST /v1/device/token   {device_code}         → 428 authorization_pending | 200 pack (once)
                                                   | 400 expired_token / invalid_grant
The seed never leaves the process; invite codes and emails are not logged.
"""

from __future__ import annotations

import argparse
import asyncio
import html
import json
import logging
import os
import re
import secrets
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlencode, urlsplit

import yaml
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from proxy.core import parse
from proxy.licence.verify import make_pack, private_key_from_seed, public_key_b64

log = logging.getLogger("ccp.issuer")
DEFAULT_KID = "ccp-issuer"
DEVICE_TTL = 600.0
DEFAULT_INTERVAL = 2
_USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"  # no vowels or look-alikes


class Invite(NamedTuple):
    code: str
    plan: str
    features: tuple[str, ...]
    duration: int  # seconds a licence from this invite is valid
    max_uses: int


class IssueError(Exception):
    """A request the issuer refuses; `status` and `code` become the JSON error response."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code = status, code


def parse_duration(raw: object) -> int:
    """Whole seconds from 1209600, "14d", "12h", "90m" or "45s" (proxy.core.parse's durations)."""
    try:
        seconds = int(parse.parse_duration("duration", raw))
    except parse.ConfigError:
        seconds = 0
    if seconds < 1:
        raise ValueError(f"duration {raw!r}: expected e.g. 14d, 12h or seconds")
    return seconds


def parse_invites(doc: object) -> dict[str, Invite]:
    """Invites from a loaded YAML/JSON document; ValueError naming the bad entry."""
    entries = doc.get("invites") if isinstance(doc, dict) else doc
    if not isinstance(entries, list):
        raise ValueError("expected a list of invites (or {invites: [...]})")
    invites: dict[str, Invite] = {}
    for i, e in enumerate(entries):
        where = f"invites[{i}]"
        if not isinstance(e, dict) or not isinstance(e.get("code"), str) or not e["code"].strip():
            raise ValueError(f"{where}: needs a code")
        features = e.get("features", [])
        if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
            raise ValueError(f"{where}.features: expected a list of names")
        max_uses = e.get("max_uses", 1)
        if not isinstance(max_uses, int) or isinstance(max_uses, bool) or max_uses < 1:
            raise ValueError(f"{where}.max_uses={max_uses!r}: expected a whole number >= 1")
        try:
            duration = parse_duration(e.get("duration", "30d"))
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        code = e["code"].strip()
        if code in invites:
            raise ValueError(f"{where}: duplicate code")
        invites[code] = Invite(
            code, str(e.get("plan", "trial")), tuple(features), duration, max_uses
        )
    return invites


class InviteBook:
    """Invites plus their use counts (persisted after every use)."""

    def __init__(self, invites: dict[str, Invite], state_path: Path) -> None:
        self.invites, self.state_path = invites, state_path
        try:
            self.uses: dict[str, int] = dict(json.loads(state_path.read_text())["uses"])
        except FileNotFoundError:
            self.uses = {}

    @classmethod
    def load(cls, path: Path, state_path: Path | None = None) -> InviteBook:
        return cls(
            parse_invites(yaml.safe_load(path.read_text(encoding="utf-8"))),
            state_path or path.with_name(path.name + ".state.json"),
        )

    def check(self, code: str) -> Invite:
        invite = self.invites.get(code.strip())
        if invite is None:
            raise IssueError(404, "unknown_invite", "no such invite code")
        if self.uses.get(invite.code, 0) >= invite.max_uses:
            raise IssueError(
                409,
                "invite_used_up",
                f"this invite code was already used {invite.max_uses} time(s)",
            )
        return invite

    def redeem(self, code: str) -> Invite:
        invite = self.check(code)
        self.uses[invite.code] = self.uses.get(invite.code, 0) + 1
        tmp = self.state_path.with_name(self.state_path.name + ".tmp")
        tmp.write_text(json.dumps({"uses": self.uses}, sort_keys=True))
        tmp.replace(self.state_path)
        return invite


class DeviceGrant(NamedTuple):
    user_code: str
    expires: float
    redirect_uri: str | None
    pack: dict | None = None


class Issuer:
    """Signs licences for invites; holds the device-flow grants in memory."""

    def __init__(
        self,
        key: Ed25519PrivateKey,
        kid: str,
        book: InviteBook,
        clock: Callable[[], float] = time.time,
        interval: int = DEFAULT_INTERVAL,
    ) -> None:
        self.key, self.kid, self.book, self.clock, self.interval = key, kid, book, clock, interval
        self.grants: dict[str, DeviceGrant] = {}

    def issue(self, invite_code: object, email: object) -> dict:  # (JSON values: checked here)
        if not isinstance(invite_code, str) or not invite_code.strip():
            raise IssueError(400, "bad_request", "invite_code is required")
        if not isinstance(email, str) or not re.match(r"^[^@\s]+@[^@\s]+$", email.strip()):
            raise IssueError(400, "bad_request", "a valid email is required")
        invite = self.book.redeem(invite_code)
        now = int(self.clock())
        licence = {
            "id": f"lic-{secrets.token_hex(8)}",
            "plan": invite.plan,
            "features": list(invite.features),
            "issued_at": now,
            "expires_at": now + invite.duration,
            "kid": self.kid,
            "subject": email.strip(),
        }
        log.info("[issuer] issued %s plan=%s", licence["id"], invite.plan)
        return make_pack(licence, self.key)

    def start_device(self, redirect_uri: str | None) -> tuple[str, DeviceGrant]:
        if redirect_uri is not None and urlsplit(redirect_uri).hostname not in (
            "127.0.0.1",
            "localhost",
        ):
            raise IssueError(400, "bad_request", "redirect_uri must be a 127.0.0.1 loopback URL")
        user_code = "-".join(
            "".join(secrets.choice(_USER_CODE_ALPHABET) for _ in range(4)) for _ in range(2)
        )
        grant = DeviceGrant(user_code, self.clock() + DEVICE_TTL, redirect_uri)
        device_code = secrets.token_urlsafe(32)
        self.grants[device_code] = grant
        return device_code, grant

    def approve(self, user_code: str, invite_code: str, email: str) -> DeviceGrant:
        found = [
            (d, g)
            for d, g in self.grants.items()
            if g.user_code == str(user_code).strip().upper()
            and g.pack is None
            and g.expires > self.clock()
        ]
        if not found:
            raise IssueError(404, "unknown_user_code", "no pending login with this code")
        device_code, grant = found[0]
        grant = grant._replace(pack=self.issue(invite_code, email))
        self.grants[device_code] = grant
        return grant

    def token(self, device_code: str) -> dict:
        grant = self.grants.get(str(device_code))
        if grant is None:
            raise IssueError(400, "invalid_grant", "unknown device_code")
        if grant.expires <= self.clock():
            del self.grants[device_code]
            raise IssueError(400, "expired_token", "the login expired; start again")
        if grant.pack is None:
            raise IssueError(428, "authorization_pending", "waiting for approval")
        del self.grants[device_code]  # a pack is handed out once
        return grant.pack


ISSUER = web.AppKey("issuer", Issuer)


async def _body(request: web.Request) -> dict:
    if request.content_type == "application/x-www-form-urlencoded":
        return dict(await request.post())
    try:
        body = await request.json()
    except ValueError:
        raise IssueError(400, "bad_request", "expected a JSON object") from None
    if not isinstance(body, dict):
        raise IssueError(400, "bad_request", "expected a JSON object")
    return body


@web.middleware
async def _errors(request: web.Request, handler):
    try:
        return await handler(request)
    except IssueError as exc:
        return web.json_response({"error": exc.code, "message": str(exc)}, status=exc.status)


async def handle_issue(request: web.Request) -> web.Response:
    body = await _body(request)
    return web.json_response(request.app[ISSUER].issue(body.get("invite_code"), body.get("email")))


async def handle_device_code(request: web.Request) -> web.Response:
    body = await _body(request) if request.can_read_body else {}
    issuer = request.app[ISSUER]
    device_code, grant = issuer.start_device(body.get("redirect_uri"))
    page = str(request.url.with_path("/device").with_query(None))
    return web.json_response(
        {
            "device_code": device_code,
            "user_code": grant.user_code,
            "verification_uri": page,
            "verification_uri_complete": f"{page}?{urlencode({'user_code': grant.user_code})}",
            "interval": issuer.interval,
            "expires_in": int(DEVICE_TTL),
        }
    )


async def handle_device_page(request: web.Request) -> web.Response:
    code = html.escape(request.query.get("user_code", ""))
    return web.Response(
        content_type="text/html",
        text=(
            "<!doctype html><title>ccp licence login</title><h1>Activate ccp</h1>"
            '<form method="post" action="/v1/device/approve">'
            f'<label>Code <input name="user_code" value="{code}"></label><br>'
            '<label>Invite code <input name="invite_code"></label><br>'
            '<label>Email <input name="email" type="email"></label><br>'
            '<button type="submit">Approve</button></form>'
        ),
    )


async def handle_approve(request: web.Request) -> web.Response:
    form = request.content_type == "application/x-www-form-urlencoded"
    body = await _body(request)
    grant = request.app[ISSUER].approve(
        body.get("user_code", ""), body.get("invite_code", ""), body.get("email", "")
    )
    redirect = (
        f"{grant.redirect_uri}?{urlencode({'user_code': grant.user_code})}"
        if grant.redirect_uri
        else None
    )
    if form:
        if redirect:
            raise web.HTTPSeeOther(redirect)
        return web.Response(
            content_type="text/html",
            text="<!doctype html><p>Approved. You can close this window.</p>",
        )
    return web.json_response({"status": "approved", "redirect_to": redirect})


async def handle_token(request: web.Request) -> web.Response:
    body = await _body(request)
    return web.json_response(request.app[ISSUER].token(body.get("device_code", "")))


def create_app(issuer: Issuer) -> web.Application:
    app = web.Application(middlewares=[_errors], client_max_size=64 * 1024)
    app[ISSUER] = issuer
    app.router.add_post("/v1/license/issue", handle_issue)
    app.router.add_post("/v1/device/code", handle_device_code)
    app.router.add_get("/device", handle_device_page)
    app.router.add_post("/v1/device/approve", handle_approve)
    app.router.add_post("/v1/device/token", handle_token)
    return app


async def _serve(issuer: Issuer, host: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runner = web.AppRunner(create_app(issuer), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0][1]
    print(
        json.dumps(
            {
                "event": "listening",
                "host": host,
                "port": bound,
                "pid": os.getpid(),
                "url": f"http://{host}:{bound}",
                "kid": issuer.kid,
                "public_key": public_key_b64(issuer.key),
            }
        ),
        flush=True,
    )
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ccp license issuer", description="Serve licence packs for invite codes."
    )
    seed = parser.add_mutually_exclusive_group(required=True)
    seed.add_argument(
        "--seed", help="base64 Ed25519 private seed (prefer --seed-file: argv is visible)"
    )
    seed.add_argument("--seed-file", help="file holding the base64 private seed")
    parser.add_argument("--invites", required=True, help="invites file (YAML or JSON)")
    parser.add_argument("--state", help="use-count file (default: <invites>.state.json)")
    parser.add_argument(
        "--kid", default=DEFAULT_KID, help=f"key id put in licences ({DEFAULT_KID})"
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default %(default)s)"
    )
    parser.add_argument("--port", type=int, default=8790, help="0 lets the OS choose (announced)")
    parser.add_argument(
        "--interval",
        type=int,
        default=DEFAULT_INTERVAL,
        help="seconds a device login waits between polls",
    )
    args = parser.parse_args(argv)
    try:
        raw_seed = args.seed or Path(args.seed_file).read_text(encoding="ascii").strip()
        key = private_key_from_seed(raw_seed)
        book = InviteBook.load(Path(args.invites), Path(args.state) if args.state else None)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s"
    )
    asyncio.run(
        _serve(Issuer(key, args.kid, book, interval=max(args.interval, 0)), args.host, args.port)
    )
    return 0
