"""The pipeline: the one order every model request goes in, whichever front door it came through.

    prepare (read, route, build the provider's request) → send → relay → finish

`run()` owns that order. A front door builds the `Exchange` (`start()`), supplies the request as an
`Inbound` and the client as a `Downstream`, and maps a `ShimError` that comes out of `run()` to
the protocol's error answer (its status and err_type are already in the record). The record is
written in `run()`'s `finally`, so an error, an upstream failure or a client that left are all
recorded, exactly once.
"""

from __future__ import annotations

import asyncio
import logging
import time

from proxy import protocols
from proxy.core import convert
from proxy.core.convert.requests import json_bytes
from proxy.core.errors import InternalError, ShimError
from proxy.core.record import ErrType, Op, Reason, clip, new_record
from proxy.core.routing import Decision
from proxy.core.sse import exact_loads
from proxy.core.thinking import might_carry_thinking, signatures_in_message
from proxy.pipeline import prepare
from proxy.pipeline.context import Downstream, Exchange, Inbound
from proxy.pipeline.finish import finish, write_query
from proxy.pipeline.relay import relay
from proxy.pipeline.send import send
from proxy.pipeline.state import LANE_HEADER, RID_HEADER, ShimState
from proxy.sinks.trajectory import parse_json_or_text
from proxy.upstream.base import UpstreamRequest

log = logging.getLogger("ccp.shim")

# Claude Code names its session in this header (the `session_id` of its JSON output), which lets a
# harness find the record of a CLI call without guessing.
CLIENT_SESSION_HEADER = "x-claude-code-session-id"


def start(state: ShimState, path: str, headers) -> Exchange:
    """The exchange of a request that just arrived on `path`."""
    protocol_in = protocols.for_path(path)
    rec = new_record(state.new_rid(), path, protocol_in.name)
    rec["client_session"] = clip(headers.get(CLIENT_SESSION_HEADER), state.settings.max_name_chars)
    return Exchange(state, state.settings, rec, protocol_in, time.perf_counter())


async def run(ex: Exchange, inbound: Inbound, down: Downstream) -> None:
    """Serve one model request into `down`; raises the ShimError the client is to be answered with
    (the record already says so)."""
    rec = ex.rec
    try:
        sent = await _to_upstream(ex, inbound, down)
        if sent is not None:  # (None: answered without the upstream)
            resp, decision, conv, ours = sent
            # awaited here, not inside a step: each chunk of a stream resumes every coroutine
            # between the front door and the relay, so that chain is kept short
            await relay(ex, resp, conv, ours, down, rec["model"] or "")
            _learn_signatures(ex, decision, resp.status)
    except ShimError as exc:
        rec["status"] = exc.status
        rec["err_type"] = rec["err_type"] or exc.err_type
        raise
    except asyncio.CancelledError:
        rec["err_type"] = rec["err_type"] or ErrType.CLIENT_ABORT
        rec["reason"] = rec["reason"] or Reason.CLIENT_DISCONNECTED
        rec["status"] = rec["status"] or 499
        raise
    except Exception as exc:  # a bug: answered in the protocol's shape, the shim keeps serving
        log.exception("[%s] unexpected error", rec["rid"])
        rec["status"] = 500
        rec["err_type"] = rec["err_type"] or ErrType.INTERNAL
        raise InternalError(f"internal error in the shim ({type(exc).__name__})") from exc
    finally:
        finish(ex)


async def _to_upstream(ex: Exchange, inbound: Inbound, down: Downstream):
    """Prepare and send: the upstream's answer with what the relay needs, or None when the request
    was answered here (a local token estimate)."""
    state, settings, rec = ex.state, ex.settings, ex.rec
    protocol_in = ex.protocol_in.name
    await prepare.read(ex, inbound)
    model = rec["model"]
    assert model is not None and ex.payload is not None
    decision, provider = prepare.route(state, model, protocol_in, rec, settings)
    ours = [(RID_HEADER, rec["rid"]), (LANE_HEADER, decision.lane)]
    if inbound.path.endswith("/count_tokens"):
        rec["op"] = Op.COUNT_TOKENS
        ex.stream = False
        if not protocols.get(provider.protocol).counts_tokens:  # a local estimate, and it says so
            assert ex.body is not None  # (prepare.read() set it)
            payload = ex.payload if ex.exact else exact_loads(ex.body)
            n = convert.estimate_tokens(payload)
            rec["status"] = 200
            rec["in_tokens"] = n
            rec["reason"] = Reason.LOCAL_ESTIMATE
            body = json_bytes({"input_tokens": n})
            down.whole(200, body, [*ours, ("x-ccp-estimate", "true")], "application/json")
            return None
    if not ex.exact:
        # Routing read `model` and `stream`; the parsed body (as large again as the body) is not
        # kept for the exchange's lifetime. A body forwarded as it is needs only its model; one
        # that is rewritten is read again, exactly (prepare.upstream_request).
        ex.payload = {"model": model}

    def for_provider(p, lane: str, upstream_model: str):
        return prepare.upstream_request(ex, inbound, p, lane, upstream_model)[1]

    up_payload: dict | None  # (both let go below, as soon as they are not needed)
    up_req: UpstreamRequest | None
    up_payload, up_req = prepare.upstream_request(
        ex, inbound, provider, decision.lane, decision.upstream_model
    )
    rec["upstream"] = up_req.host
    if ex.session is not None:
        write_query(ex, up_payload)
        if ex.stream and ex.events is None:
            ex.events = []
    if not settings.fallback_lane:
        # Only a fallback builds its request again from the payload; freed now, a converted
        # request's objects die while they are still in the cache.
        ex.payload = up_payload = None
    ex.sent = time.perf_counter()
    resp, decision, provider = await send(ex, up_req, decision, provider, for_provider)
    # sent (retries and the fallback are behind us): a held stream keeps none of the request body
    ex.body = ex.payload = up_payload = up_req = None
    ex.upstream_protocol = provider.protocol
    ours[1] = (LANE_HEADER, decision.lane)
    return resp, decision, protocols.conversion(protocol_in, provider.protocol), ours


def _learn_signatures(ex: Exchange, decision: Decision, status: int) -> None:
    """The thinking signatures a passthrough answer carried, for the cross-lane hygiene."""
    if ex.protocol_in.name != ex.upstream_protocol:
        return
    if ex.signatures:
        ex.state.signatures.learn(ex.signatures, decision.lane)
    data = ex.upstream_body
    if data and 200 <= status < 300 and might_carry_thinking(data):
        ex.state.signatures.learn(signatures_in_message(parse_json_or_text(data)), decision.lane)
