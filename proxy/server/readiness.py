"""Readiness: can the shim reach each lane's upstream right now?

Every provider of the catalog (the built-in lanes and any configured one) is probed at its base URL
with a `HEAD` (2 s), sent through the shim's own upstream seam: the client, the pool and the TLS
trust the lane's requests use, so readiness and traffic cannot disagree about a certificate, a
proxy-less route or a protocol. Any HTTP answer from 200 to 405 means the host is
there and speaking HTTP (an API root commonly answers 404 or 405), so the lane counts as reachable; the
status is kept with a `reason` naming it. Connection errors and timeouts make the lane unreachable.
The `license` object (proxy.licence.verify.readiness_view) reports the licence verified at start; it never
makes the shim unready: with enforcement on, an invalid licence only keeps haiku on anthropic.

Each provider also says whether the shim holds its credential (`credential`, and `problem` when it
does not): a zai lane without ZAI_API_KEY is reachable and still answers every haiku turn with a 401.
`destinations()` says where haiku and sonnet really go with these settings (licence, override,
pause and credentials included): `ccp up`'s banner and the shim's start-up warning are built on it.
"""

from __future__ import annotations

import asyncio

from proxy.config.settings import Settings
from proxy.core.errors import UpstreamError, UpstreamTimeout
from proxy.core.routing import LANE_ANTHROPIC, LANE_ZAI, Decision, RequestMeta, decide
from proxy.licence.verify import readiness_view
from proxy.upstream.base import Upstream, UpstreamRequest, describe

PROBE_TIMEOUT = 2.0
_REASONS = {
    200: "ok",
    204: "ok",
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
}


def classify(status: int) -> tuple[bool, str]:
    """(reachable, reason) for a probe's HTTP status."""
    if 200 <= status <= 405:
        return True, _REASONS.get(status, "ok" if status < 300 else f"http_{status}")
    return False, f"http_{status}"


async def _probe(upstream: Upstream, lane: str, url: str) -> dict:
    try:
        async with asyncio.timeout(PROBE_TIMEOUT):
            resp = await upstream.send(UpstreamRequest("HEAD", url, {}, b"", False))
    except (TimeoutError, UpstreamTimeout):
        return {"lane": lane, "url": url, "reachable": False, "status": None, "reason": "timeout"}
    except UpstreamError as exc:
        return {
            "lane": lane,
            "url": url,
            "reachable": False,
            "status": None,
            "reason": f"unreachable: {describe(exc)}",
        }
    resp.close()  # (the headers are the answer: the connection is not kept for a body)
    ok, reason = classify(resp.status)
    return {"lane": lane, "url": url, "reachable": ok, "status": resp.status, "reason": reason}


REQUIRED = (LANE_ANTHROPIC, LANE_ZAI)  # a shim without these cannot do its main job: 503
# the models a banner speaks of: what Claude Code's cheap and main turns ask for
SAMPLE_MODELS = (("haiku", "claude-haiku-4-5"), ("sonnet", "claude-sonnet-4-5"))


def credential_problem(settings: Settings, lane: str) -> str | None:
    """Why `lane` will be refused for want of a credential, or None. The anthropic lane without a
    shim credential forwards the client's own, which is normal."""
    provider = settings.catalog.provider(lane)
    if provider is None or lane == LANE_ANTHROPIC or provider.api_key:
        return None
    return f"no credential: {provider.key_env or 'its key'} is not set"


def destinations(settings: Settings) -> list[tuple[str, Decision, str | None]]:
    """(alias, decision, credential problem) for haiku and sonnet under these settings."""
    out = []
    for alias, model in SAMPLE_MODELS:
        d = decide(RequestMeta(model), settings.routing, settings.catalog, settings.model_override)
        out.append((alias, d, credential_problem(settings, d.lane)))
    return out


def describe_destinations(settings: Settings) -> str:
    """One phrase, e.g. `haiku→zai (to_zai, x-api-key); sonnet→anthropic (to_anth)`, each problem
    named where it applies."""
    parts = []
    for alias, d, problem in destinations(settings):
        why = [d.reason]
        if d.reason == "license_block":
            why.append(f"licence {settings.licence.reason or 'invalid'}, no zai_offload")
        elif d.reason == "manual_override":
            why = [f"manual override {d.upstream_model} from {settings.model_override_source}"]
        elif d.lane == LANE_ZAI:
            why.append(settings.zai_header_mode)
        if problem:
            why.append(f"NO CREDENTIAL: {problem.split(': ', 1)[-1]}, {d.lane} will answer 401")
        parts.append(f"{alias}→{d.lane} ({', '.join(why)})")
    return "; ".join(parts)


async def readiness(settings: Settings, upstream: Upstream) -> dict:
    """Probe every provider concurrently through `upstream` (the shim's own client); `ok` only when
    the required lanes are reachable."""
    lanes = {name: p.base_url for name, p in settings.catalog.providers.items()}
    results = await asyncio.gather(*(_probe(upstream, lane, url) for lane, url in lanes.items()))
    for r in results:
        r["required"] = r["lane"] in REQUIRED
        problem = credential_problem(settings, r["lane"])
        r["credential"] = problem is None
        if problem:
            r["problem"] = problem
    return {
        "ok": all(r["reachable"] for r in results if r["required"]),
        "providers": {r["lane"]: r for r in results},
        "license": readiness_view(settings.licence, settings.licence_enforce),
    }
