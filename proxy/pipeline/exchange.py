"""One model request, from the inbound body to the relayed answer.

`exchange()` is the path every model request takes: session → body checks → `decide()` → the
provider's URL, headers and (when the protocols differ) converted body → `Upstream.send()` → relay,
passthrough or converted. It fills the usage record as it goes; `proxy.server.app` writes the record and the
trajectory answer afterwards, whatever happened.

Protocol by path: `/v1/messages` and `/v1/message` are Anthropic, `/v1/chat/completions` is OpenAI.
Same protocol on both sides is a passthrough (the body is only rewritten to rename the model for a
route, or to drop thinking another lane signed); otherwise request and answer are converted.
"""
from __future__ import annotations

import codecs
import json
import logging
import time

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from proxy.config.catalog import Provider
from proxy.core import convert
from proxy.core.convert.ids import new_message_id
from proxy.core.convert.requests import json_bytes
from proxy.core.errors import (
    BadRequest,
    PayloadTooLarge,
    Unauthorized,
    UnsupportedMediaType,
    UpstreamError,
)
from proxy.core.headers import (
    LaneCredentials,
    client_response_headers,
    openai_request_headers,
    upstream_request_headers,
)
from proxy.core.provider_profiles import apply_to_request
from proxy.core.routing import LANE_ANTHROPIC, Decision, RequestMeta, decide
from proxy.core.sse import assemble_message, exact_loads, tokens_of_message
from proxy.core.thinking import (
    might_carry_thinking,
    signatures_in_message,
    strip_foreign_thinking,
)
from proxy.pipeline.convert_relay import (
    kept_headers,
    relay_converted_body,
    relay_converted_stream,
)
from proxy.pipeline.relay import relay_body, relay_stream
from proxy.pipeline.sessions import Session, request_tokens
from proxy.pipeline.state import LANE_HEADER, RID_HEADER, ShimState
from proxy.sinks.quotas import apply_quota
from proxy.sinks.trajectory import parse_json_or_text
from proxy.upstream.backoff import fallback_decision, send_with_backoff
from proxy.upstream.base import UpstreamRequest

try:  # parses a 64 KB Claude Code body ~4x faster than json; same result, json decides the odd cases
    import orjson
except ImportError:  # pragma: no cover - a dependency; the stdlib path stays correct without it
    orjson = None
try:  # the anthropic SDK's JSON parser (a dependency of it): a 64 KB body in ~60% of orjson's time,
    # read exactly as json.loads reads it (integers of any size, NaN, the last of duplicate keys);
    # what it refuses (nesting past 200 levels, lone surrogates, a BOM) goes on to orjson and json
    import jiter
    jiter.from_json(b"{}", cache_mode="none")  # (a jiter too old for the options used here: none)
except (ImportError, TypeError, AttributeError):  # pragma: no cover - orjson/json: the same payload
    jiter = None

try:  # reads what routing needs (model, stream) while checking the whole body is JSON, skipping the
    # rest without building it: a real claude CLI request (38 KB, 12 tools) in 12 µs, jiter's 43
    import msgspec

    class _Route(msgspec.Struct):
        model: str
        stream: object = None

    _ROUTE = msgspec.json.Decoder(_Route)
except ImportError:  # pragma: no cover - a dependency; the full reading below routes without it
    msgspec = _ROUTE = None

log = logging.getLogger("ccp.shim")

ANTHROPIC, OPENAI = "anthropic", "openai"
_utf8_decode = codecs.utf_8_decode


def protocol_of(path: str) -> str:
    return OPENAI if path.endswith("/chat/completions") else ANTHROPIC


def session_of(request: web.Request, state: ShimState) -> Session | None:
    return _session_for(request_tokens(request.headers), state)


def _session_for(tokens: list[str], state: ShimState) -> Session | None:
    for token in tokens:
        session = state.sessions.for_token(token)
        if session is not None:
            return session
    if state.settings.require_session:
        raise Unauthorized("this shim requires a registered session token (CCP_REQUIRE_SESSION=1)")
    return None


async def read_payload(request: web.Request, rec: dict, max_bytes: int) -> tuple[bytes, dict]:
    body, payload, _ = await _read_checked(request, rec, max_bytes)
    return body, payload


async def _read_checked(request: web.Request, rec: dict, max_bytes: int
                        ) -> tuple[bytes, dict, bool]:
    """read_payload(), and whether the payload is json.loads' own reading (`exact`)."""
    # The body is read first, whatever its type: aiohttp decodes a content-encoding as the bytes
    # arrive, and a body left unread after an early answer can make it drop the connection instead.
    try:
        body = await _read_body(request, max_bytes)  # content-encoding (gzip, deflate, br) decoded
    except (HttpProcessingError, RequestPayloadError) as exc:  # e.g. a body that is not gzip
        raise BadRequest(f"request body could not be read: {exc}", close_connection=True) from exc
    payload, exact = check_payload(body, request.content_type, rec)
    return body, payload, exact


async def _read_body(request: web.Request, max_bytes: int) -> bytes:
    """`request.read()` without the copy it keeps on the request: the body lives only as long as
    the exchange holds it, which lets a held stream drop it once it is sent (1,000 held streams
    of 64 KB bodies are 64 MB), and a body that came in one piece is not copied at all."""
    content = request.content  # aiohttp has decoded any content-encoding on the way in
    content.set_read_chunk_size(max_bytes)  # as request.read(): large bodies in large pieces
    chunks = []
    size = 0
    while True:
        chunk = await content.readany()
        if not chunk:
            break
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge(
                f"request body is larger than {max_bytes} bytes (CCP_MAX_BODY_BYTES)")
        chunks.append(chunk)
    return b"".join(chunks)  # one bytes piece is returned as it is


def check_payload(body: bytes, content_type: str, rec: dict) -> tuple[dict, bool]:
    """The checks every model request's body passes, in the shim and in `ccp mitm`: a JSON object
    with a non-empty `model`. Returns the payload and whether it is json.loads' own whole reading
    (what a rewrite needs; when not, the payload may hold only `model` and `stream`: read it again
    with `exact_reading`); raises the ShimError the client is answered with."""
    if content_type != "application/json":
        raise UnsupportedMediaType(
            f"content-type must be application/json, got {content_type or 'none'}")
    rec["bytes_in"] = len(body)
    payload, exact = route_fields(body), False  # valid JSON, a string model: only what routing needs
    if payload is None:  # anything else: the full reading decides, with its errors
        try:
            payload, exact = _read_json(body)
        except ValueError as exc:
            raise BadRequest(f"request body is not valid JSON: {exc}") from exc
        except RecursionError as exc:  # hundreds of nested arrays: no real request looks like that
            raise BadRequest("request body is nested too deeply") from exc
        if not isinstance(payload, dict):
            raise BadRequest("request body must be a JSON object")
    model = payload.get("model")
    if not isinstance(model, str) or not model.strip():
        raise BadRequest("model: field required (a non-empty string)")
    return payload, exact


# msgspec counts nesting against the interpreter's recursion limit as json does, from 4 levels less
# deep a call (json.loads reaches its C scanner through three Python frames): asked through this
# many more frames, it gives up on a body at least a level before json would, and json decides.
_ROUTE_EXTRA_FRAMES = 6


def route_fields(body: bytes) -> dict | None:
    """`{"model": …, "stream": …}` when the body is a JSON object that json.loads reads too, with a
    string `model`; None for anything else (then the full reading below decides, with its errors).

    Only what msgspec and json.loads both accept gets through: the UTF-8 is checked here (msgspec
    skips over the strings it does not keep unchecked); NaN, a BOM, lone surrogates and UTF-16 are
    msgspec's to refuse and json's to decide; duplicate keys are read last-wins by both."""
    if _ROUTE is None or not is_utf8(body):
        return None
    try:
        route = _deeper(_ROUTE.decode, body, _ROUTE_EXTRA_FRAMES)
    except (msgspec.MsgspecError, RecursionError):
        return None
    return {"model": route.model, "stream": route.stream}


# is_utf8() looks at a body this many bytes at a time (a micro-benchmark on the bench body: 4 KB
# pieces check it in 17 µs against decoding it whole in 34, without a string twice its size)
UTF8_PIECE = 4096


def is_utf8(body: bytes) -> bool:
    """Whether `body` is valid UTF-8 (what json.loads requires of bytes it reads as UTF-8).

    Piece by piece: an ASCII piece (most of any request) needs no decoding; the others are decoded
    alone, a sequence cut at a piece's end carried over to the next. Decoding the whole body instead
    builds a string up to twice its size (a single CJK character makes every one two bytes)."""
    if body.isascii():
        return True
    piece_size = UTF8_PIECE
    carried = b""
    try:
        for start in range(0, len(body), piece_size):
            piece = body[start:start + piece_size]
            if carried:
                piece = carried + piece
            elif piece.isascii():
                continue
            _, used = _utf8_decode(piece, "strict", False)
            carried = piece[used:]  # at most 3 bytes: the start of a sequence the next piece ends
    except UnicodeDecodeError:
        return False
    return not carried  # a sequence the body's end cut short


def _deeper(fn, arg, frames: int):
    return fn(arg) if frames == 0 else _deeper(fn, arg, frames - 1)


# json.loads refuses nesting deeper than the interpreter's recursion limit allows (~950 here) with
# a 400, orjson only past 1024 levels. orjson reads the body only when it cannot nest deeper than
# this; anything deeper is json's to decide, as before orjson.
ORJSON_MAX_DEPTH = 899
ORJSON_MAX_BRACKETS = ORJSON_MAX_DEPTH + 1  # (its former name: fewer brackets cannot nest deeper)
_ORJSON_DEPTH_LIMIT = 1024
# Counting brackets costs ~0.55 ns a byte, the padded read below a flat ~11 µs: the padded read
# pays from about 20 KB (a Claude Code body is 50–125 KB, often with thousands of brackets).
_PAD_FROM_BYTES = 16 * 1024
_PAD = _ORJSON_DEPTH_LIMIT - ORJSON_MAX_DEPTH
_OPEN, _CLOSE = b"[" * _PAD, b"]" * _PAD


def _loads(body: bytes):
    """The body for routing (see `_read_json`)."""
    return _read_json(body)[0]


def _read_json(body: bytes) -> tuple[object, bool]:
    """`(value, exact)`: the body read by jiter (exact: json.loads' own reading), else by orjson
    (not exact: integers past 64 bits become floats), else by json.loads (exact), which also
    decides everything the others refuse, so results, errors and messages stay the stdlib's.
    Wherever the payload is written or rewritten, exchange() wants an exact one."""
    if jiter is not None:
        try:
            return jiter.from_json(body, cache_mode="none"), True
        except ValueError:
            pass
    if orjson is not None:
        value = _orjson_loads(body)
        if value is not _REFUSED:
            return value, False
    return json.loads(body), True


_REFUSED = object()


def _orjson_loads(body: bytes):
    """orjson's reading of `body`, or `_REFUSED` (then json decides).

    The depth check: a small body has too few brackets to nest that deep (counted); a large one is
    read inside `_PAD` more lists, which orjson refuses exactly when the body itself nests deeper
    than `ORJSON_MAX_DEPTH`. Every padding list must then hold exactly one element, or the body was
    not one JSON value (e.g. `1],[2`) and json decides."""
    if len(body) < _PAD_FROM_BYTES:
        if len(body) <= 2 * ORJSON_MAX_DEPTH or \
                body.count(b"[") + body.count(b"{") < ORJSON_MAX_BRACKETS:
            try:
                return orjson.loads(body)
            except orjson.JSONDecodeError:
                pass
        return _REFUSED
    try:
        value = orjson.loads(b"".join((_OPEN, body, _CLOSE)))
    except orjson.JSONDecodeError:
        return _REFUSED
    for _ in range(_PAD):
        if len(value) != 1:
            return _REFUSED
        value = value[0]
    return value


def exact_reading(body: bytes, payload: dict) -> dict:
    """The payload exactly as json.loads reads it (the shim's behaviour before orjson)."""
    fast = orjson is not None or jiter is not None or _ROUTE is not None
    return exact_loads(body) if fast else payload  # (without them, payload is json.loads' own)


def rewrites_body(payload: dict, body: bytes, protocol_in: str, provider: Provider,
                   upstream_model: str, state: ShimState) -> bool:
    """Whether `upstream_body()` may build new bytes from the payload (else it forwards `body`)."""
    return (protocol_in != provider.protocol or upstream_model != payload["model"]
            or (protocol_in == ANTHROPIC and bool(len(state.signatures))
                and might_carry_thinking(body)))


def provider_headers(client_headers, state: ShimState, provider: Provider,
                     lane: str) -> dict[str, str]:
    """The lane's header hygiene over the client's (name, value) pairs (shim and `ccp mitm`)."""
    if provider.protocol == OPENAI:
        return openai_request_headers(provider.api_key.reveal(), provider.header_mode)
    sessions = state.sessions.tokens()
    never = sessions | state.foreign_keys if sessions else state.foreign_keys
    if lane == LANE_ANTHROPIC:
        return upstream_request_headers(lane, client_headers, state.creds, never, provider.profile)
    creds = LaneCredentials(zai_api_key=provider.api_key.reveal(), zai_header_mode=provider.header_mode)
    return upstream_request_headers(lane, client_headers, creds, never, provider.profile)


def route(state: ShimState, model: str, protocol_in: str, rec: dict,
          settings=None) -> tuple[Decision, Provider]:
    """Rows 1–5 (`decide()`) and 4b (the quota book) for one request, written into its record.

    `settings` are the ones the request read (`state.settings`, which carries the runtime
    controls: paused, header mode, override, catalog); a control changed meanwhile applies from
    the next request."""
    settings = state.settings if settings is None else settings
    decision = _decided(state, settings, model, protocol_in)
    # row 4b: an exhausted zai budget reroutes (pure; the book is fed by finished records)
    decision = apply_quota(decision, state.quotas.state(model, time.time()), settings.reroute_mode,
                           settings.catalog)
    provider = settings.catalog.provider(decision.provider)
    if provider is None:  # the catalog was validated at start; this is a bug, not bad input
        raise RuntimeError(f"decision names an unknown provider {decision.provider!r}")
    rec.update(lane=decision.lane, provider=decision.provider, decision=decision.reason,
               upstream_model=decision.upstream_model, protocol_out=provider.protocol)
    if decision.lane != LANE_ANTHROPIC and provider.protocol == ANTHROPIC:
        rec["header_mode"] = provider.header_mode
    return decision, provider


_DECISIONS_KEPT = 1024


def _decided(state: ShimState, settings, model: str, protocol_in: str) -> Decision:
    """`decide()` for this model: pure over one settings object, so remembered per model (for the
    settings it was made with: a runtime control change makes new settings, and the memory starts
    again; at most `_DECISIONS_KEPT` models)."""
    kept = getattr(state, "_decisions", None)
    if kept is None or kept[0] is not settings:
        kept = (settings, {})
        state._decisions = kept
    decision = kept[1].get((model, protocol_in))
    if decision is None:
        decision = decide(RequestMeta(model=model, protocol=protocol_in), settings.routing,
                          settings.catalog, settings.model_override)
        if len(kept[1]) < _DECISIONS_KEPT:
            kept[1][(model, protocol_in)] = decision
    return decision


def upstream_url(provider: Provider, path: str, query: str) -> str:
    if provider.protocol == OPENAI:
        return provider.base_url + "/chat/completions"
    url = provider.base_url + path
    return url + "?" + query if query else url


def upstream_body(payload: dict, body: bytes, protocol_in: str, provider: Provider, lane: str,
                   upstream_model: str, state: ShimState, rec: dict,
                   tool_names: dict[str, str] | None = None) -> tuple[dict, bytes]:
    """The body the provider gets: converted, or the client's own with the fewest changes."""
    if protocol_in == ANTHROPIC and provider.protocol == OPENAI:
        out = convert.anthropic_to_openai_request(payload, upstream_model, tool_names)
        return out, json_bytes(out)
    if protocol_in == OPENAI and provider.protocol == ANTHROPIC:
        out = convert.openai_to_anthropic_request(payload, upstream_model)
        return out, json_bytes(out)
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


async def exchange(request: web.Request, state: ShimState, rec: dict, timing: dict,
                   trace: dict) -> web.StreamResponse:
    settings = state.settings
    protocol_in = rec["protocol_in"]
    # the request's own credentials are secrets too, for anything the shim writes about it
    timing["credentials"] = request_tokens(request.headers)
    body, payload, read_exactly = await _read_checked(request, rec, settings.max_body_bytes)
    session = _session_for(timing["credentials"], state)
    exact = session is not None or settings.body_tee  # the payload is written to disk
    if exact and not read_exactly:
        payload = exact_loads(body)
    if session is not None:
        rec["session"] = session.id
    if settings.body_tee:
        timing["payload"] = payload
        timing.setdefault("tee", [])  # the head of a streamed answer, for the sample
    model = payload["model"]
    stream = payload.get("stream") is True
    rec["model"] = model
    rec["op"] = "stream" if stream else "nonstream"

    decision, provider = route(state, model, protocol_in, rec, settings)
    if request.path.endswith("/count_tokens"):
        rec["op"] = "count_tokens"
        stream = False
        if provider.protocol != ANTHROPIC:  # nobody to ask: a local estimate, and it says so
            n = convert.estimate_tokens(payload if read_exactly else exact_loads(body))
            rec.update(status=200, in_tokens=n, reason="local_estimate")
            return web.json_response({"input_tokens": n}, headers={
                RID_HEADER: rec["rid"], LANE_HEADER: decision.lane, "x-ccp-estimate": "true"})
    path = "/v1/messages/count_tokens" if rec["op"] == "count_tokens" else "/v1/messages"
    if not exact:
        # Routing read `model` and `stream`; the parsed body (as large again as the body) is not
        # kept for the exchange's lifetime. A body that is forwarded as it is needs only its model
        # (rewrites_body, upstream_body); one that is rewritten is read again, exactly, below.
        payload = {"model": model}

    def prepare(provider: Provider, lane: str, upstream_model: str) -> tuple[dict, UpstreamRequest]:
        nonlocal payload, exact
        try:
            converted = None
            names: dict[str, str] = {}  # tool names shortened for the provider -> the client's
            timing["tool_names"] = names
            if not exact and protocol_in == ANTHROPIC and provider.protocol == OPENAI:
                # converted from the bytes, which routing found to be JSON as json.loads reads it;
                # the payload stays as it was, for a fallback to another protocol
                converted = convert.anthropic_body_to_openai(body, upstream_model, names)
            if converted is not None:
                up_payload, up_body = converted
            else:
                if not exact and (rewrites_body(payload, body, protocol_in, provider,
                                                upstream_model, state)
                                  or (provider.profile is not None
                                      and provider.profile.touches_body)):
                    payload, exact = exact_loads(body), True  # read again: only the model was kept
                up_payload, up_body = upstream_body(payload, body, protocol_in, provider, lane,
                                                     upstream_model, state, rec, names)
            if provider.profile is not None:  # the provider's own quirks (proxy.core.provider_profiles)
                up_payload, changes = apply_to_request(provider.profile, provider.protocol,
                                                       up_payload)
                if changes:
                    up_body = json_bytes(up_payload)
                    rec["rewrites"] = [*(rec.get("rewrites") or ()), *changes]
        except convert.ConversionError as exc:
            raise BadRequest(f"cannot convert the request for {provider.name}: {exc}") from exc
        if protocol_in == ANTHROPIC and provider.protocol == OPENAI:
            timing["stop_sequences"] = up_payload.get("stop")  # for `stop_sequence` in the answer
        url = upstream_url(provider, path, request.query_string)
        headers = provider_headers(request.headers.items(), state, provider, lane)
        return up_payload, UpstreamRequest("POST", url, headers, up_body, stream)

    up_payload, up_req = prepare(provider, decision.lane, decision.upstream_model)
    rec["upstream"] = up_req.host
    if session is not None:
        write_query(state, session, rec, up_payload, trace, timing["credentials"])
        if stream:
            timing["tee"] = []
    # (over the credentials, not over `timing`: a closure held by the dict it reads is a cycle
    # that only the GC would end, and it would hold every request's timing until it ran)
    credentials = timing["credentials"]
    timing["save_partial"] = lambda rid, chunks: state.save_partial(rid, chunks, credentials)

    assert state.upstream is not None
    if not settings.fallback_lane:
        # Only a fallback builds its request again from the payload. Freed now, a converted
        # request's thousands of objects die while they are still in the cache, not after the
        # upstream answered (which, with 32 requests in flight, cost more than building them).
        payload = up_payload = None
    timing["sent"] = time.perf_counter()
    if settings.enable_backoff or settings.fallback_lane:
        resp, decision, provider = await _send(state, up_req, rec, decision, provider, prepare, model,
                                               settings)
    else:  # _send() without backoff or fallback: the one attempt (one coroutine less to resume)
        resp = await state.upstream.send(up_req)
        rec["retries"] = 0
    # sent (retries and the fallback are behind us): a held stream keeps none of the request body
    body = payload = up_payload = up_req = None
    timing["upstream_protocol"] = provider.protocol
    rec["upstream_status"] = rec["status"] = resp.status
    rec["h2"] = resp.h2
    if resp.status >= 400:
        rec["err_type"] = "upstream_5xx" if resp.status >= 500 else "upstream_4xx"
    ours = [(RID_HEADER, rec["rid"]), (LANE_HEADER, decision.lane)]
    if resp.is_sse and resp.status < 300:
        state.metrics.inflight_streams.inc()
        try:
            return await _relay(request, resp, rec, timing, state, decision, provider, protocol_in,
                                model, ours)
        finally:
            state.metrics.inflight_streams.dec()
    return await _relay(request, resp, rec, timing, state, decision, provider, protocol_in, model, ours)


async def _send(state: ShimState, up_req: UpstreamRequest, rec: dict, decision: Decision,
                provider: Provider, prepare, model: str,
                settings) -> tuple[object, Decision, Provider]:
    """Send with backoff (CCP_ENABLE_BACKOFF) and, when the lane fails, once to CCP_FALLBACK_LANE
    (`settings`: the ones the request read)."""

    def count(n: int, _delay: float, _status: int) -> None:
        rec["retries"] = n

    try:
        if settings.enable_backoff:
            resp, rec["retries"] = await send_with_backoff(state.upstream, up_req, settings,
                                                           on_retry=count)
        else:  # send_with_backoff() without backoff: the one attempt
            resp = await state.upstream.send(up_req)
            rec["retries"] = 0
    except UpstreamError as exc:
        why = fallback_decision(settings, decision.provider, decision.lane, error=exc)
        if why is None:
            raise
    else:
        if not settings.fallback_lane:  # (fallback_decision's first answer, without the call)
            return resp, decision, provider
        why = fallback_decision(settings, decision.provider, decision.lane, status=resp.status)
        if why is None:
            return resp, decision, provider
        resp.close()
    fallback = settings.catalog.provider(settings.fallback_lane)
    log.warning("[%s] %s failed (%s): falling back to %s", rec["rid"], decision.lane, why, fallback.name)
    decision = Decision(fallback.name, fallback.name, model, "fallback", fallback.protocol)
    rec.update(lane=fallback.name, provider=fallback.name, decision="fallback", reason=why,
               upstream_model=model, protocol_out=fallback.protocol, err_type=None)
    rec.pop("header_mode", None)
    if fallback.name != LANE_ANTHROPIC and fallback.protocol == ANTHROPIC:
        rec["header_mode"] = fallback.header_mode
    _, fb_req = prepare(fallback, fallback.name, model)
    rec["upstream"] = fb_req.host
    return await state.upstream.send(fb_req), decision, fallback


async def _relay(request: web.Request, resp, rec: dict, timing: dict, state: ShimState, decision,
                 provider: Provider, protocol_in: str, model: str,
                 ours: list[tuple[str, str]]) -> web.StreamResponse:
    """Passthrough or converted, stream or whole body."""
    if protocol_in == provider.protocol:  # passthrough
        out_headers = client_response_headers(resp.headers) + ours
        if resp.is_sse:
            out = await relay_stream(request, resp, out_headers, rec, timing)
            state.signatures.learn(timing.get("signatures") or (), decision.lane)
            return out
        out = await relay_body(resp, out_headers, rec, timing)
        data = timing.get("body") or b""
        if 200 <= resp.status < 300 and might_carry_thinking(data):
            state.signatures.learn(signatures_in_message(parse_json_or_text(data)), decision.lane)
        return out

    out_headers = kept_headers(resp.headers) + ours
    if protocol_in == ANTHROPIC:  # Anthropic client, OpenAI provider
        stops, names = timing.get("stop_sequences"), timing.get("tool_names")
        if resp.status < 300 and resp.is_sse:
            return await relay_converted_stream(
                request, resp, out_headers, rec, timing,
                convert.OpenAIToAnthropicStream(model, stops, names), True)
        return await relay_converted_body(
            resp, out_headers, rec, timing,
            lambda b: convert.openai_to_anthropic_response(b, model, stops, names),
            convert.openai_error_to_anthropic, lambda _up, message: tokens_of_message(message),
            recover=lambda status, data: _max_tokens_answer(status, data, model),
            as_sse=convert.message_events if rec["op"] == "stream" else None)
    if resp.status < 300 and resp.is_sse:  # OpenAI client, Anthropic provider
        return await relay_converted_stream(request, resp, out_headers, rec, timing,
                                            convert.AnthropicToOpenAIStream(model, int(time.time())),
                                            False)
    return await relay_converted_body(
        resp, out_headers, rec, timing,
        lambda b: convert.anthropic_to_openai_response(b, model, int(time.time())),
        convert.anthropic_error_to_openai, lambda upstream, _converted: tokens_of_message(upstream))


def _max_tokens_answer(status: int, data: bytes, model: str) -> dict | None:
    """Anthropic's answer to a request that hit max_tokens, for a provider that answered 400."""
    if not convert.is_max_tokens_error(status, data):
        return None
    return convert.max_tokens_message(new_message_id(), model)


def write_query(state: ShimState, session: Session, rec: dict, payload: dict, trace: dict,
                credentials: list[str]) -> None:
    trace.update(ts=state.trajectories.new_ts(), session=session.id,
                 secrets=state.redaction_secrets(credentials))
    meta = {"rid": rec["rid"], "session": session.id, "sandbox_id": session.sandbox_id,
            "task_name": session.task_name, "route": rec["lane"], "provider": rec["provider"],
            "model": rec["model"], "upstream_model": rec["upstream_model"], "path": rec["path"],
            "protocol_in": rec["protocol_in"], "protocol_out": rec["protocol_out"]}
    try:
        state.trajectories.write_query(session.id, trace["ts"], payload, meta, trace["secrets"])
    except OSError:
        log.exception("[%s] could not write the trajectory query", rec["rid"])


def write_answer(state: ShimState, rec: dict, timing: dict, trace: dict) -> None:
    """The answer half of a trajectory pair, also when the exchange failed."""
    if timing.get("tee"):
        raw = b"".join(timing["tee"])
        message = assemble_message(raw) if timing.get("upstream_protocol") == ANTHROPIC else None
        upstream = {"message": message, "events": raw.decode("utf-8", "replace")}
    elif timing.get("body") is not None:
        upstream = parse_json_or_text(timing["body"])
    else:
        upstream = None
    meta = {"rid": rec["rid"], "session": rec["session"], "status": rec["status"],
            "upstream_status": rec["upstream_status"], "err_type": rec["err_type"],
            "reason": rec["reason"]}
    # passthrough: what went down is what came up; a conversion says what it sent down
    downstream = timing.get("downstream", upstream)
    try:
        state.trajectories.write_answer(trace["session"], trace["ts"], meta, upstream, downstream,
                                        trace["secrets"])
    except OSError:
        log.exception("[%s] could not write the trajectory answer", rec["rid"])
