"""Step 2 of the pipeline: the request goes to the provider, with backoff (CCP_ENABLE_BACKOFF) and,
when the lane fails, once to the fallback lane (CCP_FALLBACK_LANE)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from proxy.config.catalog import Provider
from proxy.core.errors import UpstreamError
from proxy.core.routing import LANE_ANTHROPIC, Decision
from proxy.pipeline.context import Exchange
from proxy.protocols import ANTHROPIC
from proxy.upstream.backoff import fallback_decision, send_with_backoff
from proxy.upstream.base import UpstreamRequest, UpstreamResponse

log = logging.getLogger("ccp.shim")

# (provider, lane, upstream model) -> the request for that provider
Prepare = Callable[[Provider, str, str], UpstreamRequest]


async def send(
    ex: Exchange, up_req: UpstreamRequest, decision: Decision, provider: Provider, prepare: Prepare
) -> tuple[UpstreamResponse, Decision, Provider]:
    settings, rec, upstream = ex.settings, ex.rec, ex.state.upstream
    assert upstream is not None
    if not (settings.enable_backoff or settings.fallback_lane):  # the one attempt
        rec["retries"] = 0
        return await upstream.send(up_req), decision, provider

    def count(n: int, _delay: float, _status: int) -> None:
        rec["retries"] = n

    try:
        if settings.enable_backoff:
            resp, rec["retries"] = await send_with_backoff(
                upstream, up_req, settings, on_retry=count
            )
        else:
            resp = await upstream.send(up_req)
            rec["retries"] = 0
    except UpstreamError as exc:
        why = fallback_decision(settings, decision.provider, decision.lane, error=exc)
        if why is None:
            raise
    else:
        if not settings.fallback_lane:
            return resp, decision, provider
        why = fallback_decision(settings, decision.provider, decision.lane, status=resp.status)
        if why is None:
            return resp, decision, provider
        resp.close()
    fallback = settings.catalog.provider(settings.fallback_lane)
    assert fallback is not None  # (the catalog was checked against CCP_FALLBACK_LANE at start)
    model = rec["model"] or decision.upstream_model
    log.warning(
        "[%s] %s failed (%s): falling back to %s", rec["rid"], decision.lane, why, fallback.name
    )
    decision = Decision(fallback.name, fallback.name, model, "fallback", fallback.protocol)
    rec["lane"] = fallback.name
    rec["provider"] = fallback.name
    rec["decision"] = "fallback"
    rec["reason"] = why
    rec["upstream_model"] = model
    rec["protocol_out"] = fallback.protocol
    rec["err_type"] = None
    rec.pop("header_mode", None)
    if fallback.name != LANE_ANTHROPIC and fallback.protocol == ANTHROPIC:
        rec["header_mode"] = fallback.header_mode
    fb_req = prepare(fallback, fallback.name, model)
    rec["upstream"] = fb_req.host
    return await upstream.send(fb_req), decision, fallback
