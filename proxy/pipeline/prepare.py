"""Step 1 of the pipeline: from the client's body to the request the provider gets.

The body is read and checked (proxy.core.payload); the session, if any, is found by the request's
credentials; `route()` applies rows 1–5 of the routing table (`decide()`) and row 4b (the quota
book) and writes the decision into the record; `upstream_request()` builds the provider's URL,
headers and body through the protocols' adapters: the client's own bytes with the fewest changes
when the protocols match (renaming the model for a route, dropping thinking another lane signed),
a conversion through the adapters when they differ.
"""

from __future__ import annotations

import logging
import time

from proxy import protocols
from proxy.config.catalog import Provider
from proxy.core import convert
from proxy.core.convert.requests import json_bytes
from proxy.core.errors import BadRequest, Unauthorized
from proxy.core.payload import check_payload
from proxy.core.provider_profiles import apply_to_request
from proxy.core.record import Op, UsageRecord
from proxy.core.redact import REQUEST_SECRETS
from proxy.core.routing import LANE_ANTHROPIC, Decision, RequestMeta, decide
from proxy.core.sse import exact_loads
from proxy.core.thinking import might_carry_thinking, strip_foreign_thinking
from proxy.pipeline.context import Exchange, Inbound
from proxy.pipeline.sessions import Session, request_tokens
from proxy.pipeline.state import ShimState
from proxy.sinks.quotas import apply_quota
from proxy.upstream.base import UpstreamRequest

log = logging.getLogger("ccp.shim")

ANTHROPIC, OPENAI = protocols.ANTHROPIC, protocols.OPENAI


async def read(ex: Exchange, inbound: Inbound) -> None:
    """The body, checked; the session; what the record knows of the request so far."""
    settings, rec = ex.settings, ex.rec
    ex.credentials = request_tokens(inbound.headers)  # secrets too, for anything written about it
    if ex.credentials:  # and for any log line written while the request is served
        REQUEST_SECRETS.set(ex.credentials)
    body = await inbound.read_body(settings.max_body_bytes)
    payload, exact = check_payload(body, inbound.content_type, rec)
    if len(payload["model"]) > settings.max_name_chars:  # neither routed, remembered nor recorded
        raise BadRequest(
            f"model: longer than {settings.max_name_chars} characters (CCP_MAX_NAME_CHARS)"
        )
    session = await session_for(ex.credentials, ex.state)
    keep = session is not None or settings.body_tee  # the payload is written to disk
    if keep and not exact:
        payload, exact = exact_loads(body), True
    if session is not None:
        ex.session = session
        rec["session"] = session.id
    if settings.body_tee:
        ex.tee_payload = payload
        ex.events = []  # the head of a streamed answer, for the sample
    ex.body, ex.payload, ex.exact = body, payload, exact
    ex.stream = payload.get("stream") is True
    rec["model"] = payload["model"]
    rec["op"] = Op.STREAM if ex.stream else Op.NONSTREAM


async def session_for(tokens: list[str], state: ShimState) -> Session | None:
    """The session of the request's credentials: known here, or (a fleet) found in the shared
    store, which an unknown credential costs once per MISS_TTL (proxy.pipeline.sessions)."""
    sessions = state.sessions
    for token in tokens:
        session = sessions.for_token(token)
        if session is not None:
            return session
    if sessions.shared is not None:
        for token in tokens:
            if token in state.foreign_keys or token in state.secret_values:
                continue  # the shim's own keys are nobody's session
            session = await sessions.lookup(token)
            if session is not None:
                return session
    if state.settings.require_session:
        raise Unauthorized("this shim requires a registered session token (CCP_REQUIRE_SESSION=1)")
    return None


def route(
    state: ShimState, model: str, protocol_in: str, rec: UsageRecord, settings=None
) -> tuple[Decision, Provider]:
    """Rows 1–5 (`decide()`) and 4b (the quota book) for one request, written into its record.

    `settings` are the ones the request read (`state.settings`, which carries the runtime
    controls: paused, header mode, override, catalog); a control changed meanwhile applies from
    the next request."""
    settings = state.settings if settings is None else settings
    decision = _decided(state, settings, model, protocol_in)
    # row 4b: an exhausted zai budget reroutes (pure; the book is fed by finished records)
    decision = apply_quota(
        decision, state.quotas.state(model, time.time()), settings.reroute_mode, settings.catalog
    )
    provider = settings.catalog.provider(decision.provider)
    if provider is None:  # the catalog was validated at start; this is a bug, not bad input
        raise RuntimeError(f"decision names an unknown provider {decision.provider!r}")
    rec["lane"] = decision.lane
    rec["provider"] = decision.provider
    rec["decision"] = decision.reason
    rec["upstream_model"] = decision.upstream_model
    rec["protocol_out"] = provider.protocol
    if decision.lane != LANE_ANTHROPIC and provider.protocol == ANTHROPIC:
        rec["header_mode"] = provider.header_mode
    return decision, provider


_DECISIONS_KEPT = 1024
# what one remembered decision holds besides its model name: the key tuple, the Decision and its
# strings, the dict slot (measured with sys.getsizeof, rounded up)
DECISION_OVERHEAD_BYTES = 512


def _decided(state: ShimState, settings, model: str, protocol_in: str) -> Decision:
    """`decide()` for this model: pure over one settings object, so remembered per model (for the
    settings it was made with: a runtime control change makes new settings, and the memory starts
    again; at most `_DECISIONS_KEPT` models and CCP_DECISION_CACHE_BYTES: a decision is still
    made for every model, only not remembered once full)."""
    kept = state.decisions
    if kept is None or kept[0] is not settings:
        kept = (settings, {})
        state.decisions = kept
        state.decision_bytes = 0
    decision = kept[1].get((model, protocol_in))
    if decision is None:
        decision = decide(
            RequestMeta(model=model, protocol=protocol_in),
            settings.routing,
            settings.catalog,
            settings.model_override,
        )
        cost = DECISION_OVERHEAD_BYTES + 2 * len(model) + len(decision.upstream_model or "")
        if (
            len(kept[1]) < _DECISIONS_KEPT
            and state.decision_bytes + cost <= settings.decision_cache_bytes
        ):
            kept[1][(model, protocol_in)] = decision
            state.decision_bytes += cost
    return decision


def upstream_url(provider: Provider, op: str, query: str) -> str:
    return protocols.get(provider.protocol).upstream_url(provider.base_url, op, query)


def provider_headers(
    client_headers, state: ShimState, provider: Provider, lane: str
) -> dict[str, str]:
    """The lane's header hygiene over the client's (name, value) pairs."""
    sessions = state.sessions.tokens()
    never = sessions | state.foreign_keys if sessions else state.foreign_keys
    return protocols.get(provider.protocol).request_headers(
        client_headers,
        lane=lane,
        api_key=provider.api_key.reveal(),
        header_mode=provider.header_mode,
        credentials=state.creds,
        never=never,
        profile=provider.profile,
    )


def rewrites_body(
    payload: dict,
    body: bytes,
    protocol_in: str,
    provider: Provider,
    upstream_model: str,
    state: ShimState,
) -> bool:
    """Whether `upstream_body()` may build new bytes from the payload (else it forwards `body`)."""
    return (
        protocol_in != provider.protocol
        or upstream_model != payload["model"]
        or (protocol_in == ANTHROPIC and bool(len(state.signatures)) and might_carry_thinking(body))
    )


def upstream_body(
    payload: dict,
    body: bytes,
    protocol_in: str,
    provider: Provider,
    lane: str,
    upstream_model: str,
    state: ShimState,
    rec: UsageRecord,
    tool_names: dict[str, str] | None = None,
) -> tuple[dict, bytes]:
    """The body the provider gets: converted, or the client's own with the fewest changes."""
    conversion = protocols.conversion(protocol_in, provider.protocol)
    if conversion is not None:
        return conversion.request(
            payload, body, upstream_model, {} if tool_names is None else tool_names
        )
    rewrites = []
    # an empty signature book cannot name a foreign signer: no need to scan a 100 KB body for one
    if protocol_in == ANTHROPIC and len(state.signatures) and might_carry_thinking(body):
        stripped = strip_foreign_thinking(payload, lane, state.signatures)
        if stripped:  # the one same-protocol rewrite: thinking another lane signed
            rewrites.append(f"stripped_foreign_thinking:{stripped}")
    if upstream_model != payload["model"]:  # a route that renames the model
        payload["model"] = upstream_model
        rewrites.append("model")
    if rewrites:
        rec["rewrites"] = rewrites
        return payload, json_bytes(payload)
    return payload, body


def upstream_request(
    ex: Exchange, inbound: Inbound, provider: Provider, lane: str, upstream_model: str
) -> tuple[dict, UpstreamRequest]:
    """The provider's request for this exchange (also for a fallback to another provider)."""
    rec, state, protocol_in = ex.rec, ex.state, ex.protocol_in.name
    body, payload = ex.body, ex.payload
    assert body is not None and payload is not None
    names: dict[str, str] = {}  # tool names shortened for the provider -> the client's
    ex.tool_names = names
    try:
        conversion = protocols.conversion(protocol_in, provider.protocol)
        if conversion is not None and not ex.exact and conversion.to_provider:
            # converted from the bytes, which routing found to be JSON as json.loads reads it;
            # the payload stays as it was, for a fallback to another protocol
            up_payload, up_body = conversion.request(None, body, upstream_model, names)
        else:
            if not ex.exact and (
                rewrites_body(payload, body, protocol_in, provider, upstream_model, state)
                or (provider.profile is not None and provider.profile.touches_body)
            ):
                payload = ex.payload = exact_loads(body)  # read again: only the model was kept
                ex.exact = True
            up_payload, up_body = upstream_body(
                payload, body, protocol_in, provider, lane, upstream_model, state, rec, names
            )
        if provider.profile is not None:  # the provider's own quirks (proxy.core.provider_profiles)
            up_payload, changes = apply_to_request(provider.profile, provider.protocol, up_payload)
            if changes:
                up_body = json_bytes(up_payload)
                rec["rewrites"] = [*(rec.get("rewrites") or ()), *changes]
    except convert.ConversionError as exc:
        raise BadRequest(f"cannot convert the request for {provider.name}: {exc}") from exc
    if protocol_in == ANTHROPIC and provider.protocol != ANTHROPIC:
        ex.stop_sequences = up_payload.get("stop")  # for `stop_sequence` in the answer
    url = upstream_url(provider, rec["op"] or Op.NONSTREAM, inbound.query_string)
    headers = provider_headers(inbound.headers.items(), state, provider, lane)
    return up_payload, UpstreamRequest("POST", url, headers, up_body, ex.stream)
