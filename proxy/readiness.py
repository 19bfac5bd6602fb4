"""Readiness: can the shim reach each lane's upstream right now?

Every provider of the catalog (the built-in lanes and any configured one) is probed at its base URL
with a `HEAD` (2 s). Any HTTP answer from 200 to 405 means the host is
there and speaking HTTP (an API root commonly answers 404 or 405), so the lane counts as reachable; the
status is kept with a `reason` naming it. Connection errors and timeouts make the lane unreachable.
The `license` object (proxy.license.readiness_view) reports the licence verified at start; it never
makes the shim unready: with enforcement on, an invalid licence only keeps haiku on anthropic.
"""
from __future__ import annotations

import asyncio

import aiohttp

from proxy.license import readiness_view
from proxy.routing import LANE_ANTHROPIC, LANE_ZAI
from proxy.settings import Settings
from proxy.upstream import ssl_for

PROBE_TIMEOUT = 2.0
_REASONS = {200: "ok", 204: "ok", 400: "bad_request", 401: "unauthorized", 403: "forbidden",
            404: "not_found", 405: "method_not_allowed"}


def classify(status: int) -> tuple[bool, str]:
    """(reachable, reason) for a probe's HTTP status."""
    if 200 <= status <= 405:
        return True, _REASONS.get(status, "ok" if status < 300 else f"http_{status}")
    return False, f"http_{status}"


async def _probe(session: aiohttp.ClientSession, lane: str, url: str) -> dict:
    try:
        async with session.head(url, allow_redirects=False) as resp:
            ok, reason = classify(resp.status)
            return {"lane": lane, "url": url, "reachable": ok, "status": resp.status, "reason": reason}
    except (asyncio.TimeoutError, aiohttp.ServerTimeoutError):
        return {"lane": lane, "url": url, "reachable": False, "status": None, "reason": "timeout"}
    except (aiohttp.ClientError, OSError) as exc:
        return {"lane": lane, "url": url, "reachable": False, "status": None,
                "reason": f"unreachable: {type(exc).__name__}"}


REQUIRED = (LANE_ANTHROPIC, LANE_ZAI)  # a shim without these cannot do its main job: 503


async def readiness(settings: Settings) -> dict:
    """Probe every provider concurrently; `ok` only when the required lanes are reachable."""
    lanes = {name: p.base_url for name, p in settings.catalog.providers.items()}
    timeout = aiohttp.ClientTimeout(total=PROBE_TIMEOUT)
    connector = aiohttp.TCPConnector(ssl=ssl_for(settings))
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        results = await asyncio.gather(*(_probe(session, lane, url) for lane, url in lanes.items()))
    for r in results:
        r["required"] = r["lane"] in REQUIRED
    return {"ok": all(r["reachable"] for r in results if r["required"]),
            "providers": {r["lane"]: r for r in results},
            "license": readiness_view(settings.licence, settings.licence_enforce)}
