"""The one admin guard: every admin endpoint (controls, sessions, quotas, logs-rotate) calls
`require_admin()`, which wants CCP_ADMIN_TOKEN (when set) as `authorization: Bearer …` or
`x-ccp-admin-token`, compared in constant time."""

from __future__ import annotations

import hmac

from aiohttp import web

from proxy.config.settings import Settings
from proxy.core.errors import Unauthorized
from proxy.core.headers import bearer_token

SETTINGS = web.AppKey("start_settings", Settings)  # the settings the app was made with
ADMIN_HEADER = "x-ccp-admin-token"


def require_admin(request: web.Request) -> None:
    expected = request.app[SETTINGS].admin_token.reveal()
    if not expected:
        return
    given = request.headers.get(ADMIN_HEADER, "")
    auth = request.headers.get("authorization", "")
    token = bearer_token(auth) if auth else None
    if token is not None:
        given = given or token
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise Unauthorized(
            "admin token required (CCP_ADMIN_TOKEN): send it as "
            "`authorization: Bearer …` or `x-ccp-admin-token`"
        )
