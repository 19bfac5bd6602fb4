"""The shim's routing core as a mitmproxy addon (`ccp mitm`, HTTPS_PROXY mode).

Claude Code, run with its own login and `HTTPS_PROXY`, talks to `api.anthropic.com` through
mitmproxy. `CcpRouter` takes the model requests among those flows and gives them exactly what the
shim gives them, by calling the shim's own functions (proxy.pipeline.exchange, proxy.core.headers, proxy.core.sse,
proxy.pipeline.relay, proxy.pipeline.state): the body checks, `decide()` and the quota row, the lane's header hygiene,
the thinking-signature rewrite, the SSE meter and the one usage record per request (JSONL, Prometheus,
quota book, SQLite store). What differs is only the transport: mitmproxy reads the request, opens the
upstream connection (TLS, HTTP/2 by ALPN unless `MITM_FORCE_H1`) and relays the answer; the addon
rewrites the request's URL, headers and body in `request`, taps the SSE bytes as they pass (a
callable `response.stream` that returns every chunk unchanged) and writes the record in `response` or
`error`, whichever ends the flow.

Which flows: `MITM_FILTER_CHAIN` — `1` (default) the Anthropic API hosts, `0` none (mitmproxy passes
everything untouched), or a mitmproxy filter expression. Inside the chosen flows only the model
paths (`/v1/messages`, `/v1/message`, `/v1/messages/count_tokens`, also under a prefix) are routed;
anything else on those hosts goes to the anthropic lane's upstream as it came.

Not carried over from the shim (see README, "ccp mitm"): routes to an OpenAI-protocol provider
(mitm mode does not convert protocols; such a request is answered 501 in the Anthropic error shape),
backoff and the fallback lane (mitmproxy owns the upstream connection), sandbox sessions and
trajectories (sandboxes use the shim), and the Anthropic error shape for upstream connection failures
(mitmproxy answers those with its own 502; the record says `err_type: net`).
"""
from __future__ import annotations

import logging
import time
from typing import NamedTuple
from urllib.parse import urlsplit

from mitmproxy import flowfilter, http

from proxy.core.errors import BadRequest, ShimError, error_body
from proxy.core.record import new_record, set_tokens
from proxy.core.sse import SseMeter, tokens_from_message
from proxy.core.thinking import might_carry_thinking, signatures_in_message
from proxy.pipeline.exchange import (
    ANTHROPIC,
    check_payload,
    exact_reading,
    provider_headers,
    rewrites_body,
    route,
    upstream_body,
    upstream_url,
)
from proxy.pipeline.relay import account_stream_end, ms
from proxy.pipeline.sessions import inbound_tokens
from proxy.pipeline.state import LANE_HEADER, RID_HEADER, ShimState
from proxy.server.app import CLIENT_SESSION_HEADER
from proxy.sinks.partials import KEEP_BYTES as PARTIAL_KEEP_BYTES
from proxy.sinks.trajectory import parse_json_or_text

log = logging.getLogger("ccp.mitm")

ANTHROPIC_API_HOSTS = ("api.anthropic.com",)
MODEL_PATHS = ("/v1/messages", "/v1/message", "/v1/messages/count_tokens")
_FLIGHT = "ccp"  # flow.metadata key of the request's Flight


class FilterChain(NamedTuple):
    """Which flows the addon handles: none, or those a mitmproxy filter expression matches."""

    enabled: bool
    expression: str


def parse_filter_chain(value: str) -> FilterChain:
    """`MITM_FILTER_CHAIN`: 1/on (the Anthropic API hosts), 0/off, or a mitmproxy filter expression.
    Raises ValueError for an expression mitmproxy cannot parse."""
    raw = value.strip()
    if raw.lower() in ("", "1", "on", "true", "yes"):
        return FilterChain(True, " | ".join(f"~d {h}" for h in ANTHROPIC_API_HOSTS))
    if raw.lower() in ("0", "off", "false", "no"):
        return FilterChain(False, "")
    try:
        flowfilter.parse(raw)
    except ValueError as exc:
        raise ValueError(f"not a mitmproxy filter expression: {raw!r} ({exc})") from None
    return FilterChain(True, raw)


class Flight:
    """One routed flow: its usage record and what the hooks measured along the way."""

    __slots__ = ("rec", "timing", "t0", "hook_s", "meter", "relayed", "kept", "first_chunk",
                 "stream_start", "done", "answered")

    def __init__(self, rec: dict, t0: float) -> None:
        self.rec = rec
        self.timing: dict = {"t0": t0}
        self.t0 = t0  # the request's start, wall clock (mitmproxy's timestamps are time.time())
        self.hook_s = 0.0  # time spent in this addon's hooks: the record's overhead_ms
        self.meter: SseMeter | None = None
        self.relayed: list[bytes] = []
        self.kept = 0
        self.first_chunk: float | None = None
        self.stream_start = 0.0
        self.done = False
        self.answered = False  # the addon answered the client itself (bad input)

    def tap(self, chunk: bytes) -> bytes:
        """`response.stream`: every chunk goes on unchanged; the meter only watches."""
        if chunk:
            if self.first_chunk is None:
                self.first_chunk = time.time()
            self.meter.feed(chunk)
            if self.kept < PARTIAL_KEEP_BYTES:
                self.relayed.append(chunk)
                self.kept += len(chunk)
        return chunk


class CcpRouter:
    """Routes the model requests of the chosen flows like the shim does, and records each once."""

    def __init__(self, state: ShimState) -> None:
        self.state = state
        chain = parse_filter_chain(state.settings.mitm_filter_chain)
        self.enabled = chain.enabled
        self._filter = flowfilter.parse(chain.expression) if chain.enabled else None
        self.passed = 0  # flows left untouched (other hosts, other paths)

    # which flows
    def _chosen(self, flow: http.HTTPFlow) -> bool:
        return self.enabled and bool(flowfilter.match(self._filter, flow))

    @staticmethod
    def _is_model_request(flow: http.HTTPFlow) -> bool:
        # by suffix: a host chosen by MITM_FILTER_CHAIN may serve the API under a prefix
        return flow.request.method == "POST" and \
            flow.request.path.split("?", 1)[0].endswith(MODEL_PATHS)

    def _to_anthropic_lane(self, flow: http.HTTPFlow) -> None:
        """Send a chosen flow that is not a model call (Claude Code's settings calls, …) to the
        anthropic lane's upstream, path and headers unchanged (a no-op with the default lane)."""
        base = urlsplit(self.state.settings.anthropic_base_url)
        if (base.scheme, base.hostname, base.port or 443) == \
                (flow.request.scheme, flow.request.host, flow.request.port):
            return
        flow.request.url = self.state.settings.anthropic_base_url + flow.request.path
        flow.request.host_header = base.netloc

    # mitmproxy events
    def request(self, flow: http.HTTPFlow) -> None:
        chosen = self._chosen(flow)
        if not chosen or not self._is_model_request(flow):
            self.passed += 1
            log.info("[pass%s] %s %s%s", " to the anthropic lane" if chosen else "",
                     flow.request.method, flow.request.pretty_host, flow.request.path.split("?", 1)[0])
            if chosen:  # the Anthropic API, not a model call: the anthropic lane, as it came
                self._to_anthropic_lane(flow)
            return
        started = time.perf_counter()
        path = flow.request.path.split("?", 1)[0]
        rec = new_record(self.state.new_rid(), path, ANTHROPIC)
        rec["client_session"] = flow.request.headers.get(CLIENT_SESSION_HEADER)
        flight = Flight(rec, flow.request.timestamp_start or time.time())
        flow.metadata[_FLIGHT] = flight
        try:
            self._route(flow, flight)
        except ShimError as exc:
            self._answer_error(flow, flight, exc)
        except Exception as exc:  # a bug: answer in the protocol's shape, keep serving
            log.exception("[%s] unexpected error", rec["rid"])
            rec["err_type"] = "internal"
            self._answer_error(flow, flight, ShimError(
                f"internal error in ccp mitm ({type(exc).__name__})"))
        finally:
            flight.hook_s += time.perf_counter() - started

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        flight = flow.metadata.get(_FLIGHT)
        if flight is None or flight.done or flow.response is None or flight.answered:
            return
        started = time.perf_counter()
        rec, resp = flight.rec, flow.response
        rec["upstream_status"] = rec["status"] = resp.status_code
        rec["h2"] = resp.http_version == "HTTP/2.0"
        if resp.status_code >= 400:
            rec["err_type"] = "upstream_5xx" if resp.status_code >= 500 else "upstream_4xx"
        resp.headers[RID_HEADER] = rec["rid"]
        resp.headers[LANE_HEADER] = rec["lane"]
        if resp.status_code < 300 and resp.headers.get("content-type", "").startswith("text/event-stream"):
            flight.meter = SseMeter()
            flight.stream_start = time.time()
            self.state.metrics.inflight_streams.inc()
            resp.stream = flight.tap
        flight.hook_s += time.perf_counter() - started

    def response(self, flow: http.HTTPFlow) -> None:
        flight = flow.metadata.get(_FLIGHT)
        if flight is None or flight.done:
            return
        started = time.perf_counter()
        rec = flight.rec
        resp = flow.response
        if flight.meter is not None:
            self._end_stream(flight, ended=True)
        elif resp is not None and resp.raw_content is not None:
            data = resp.raw_content
            flight.timing["body"] = data
            rec["bytes_out"] = len(data)
            if 200 <= resp.status_code < 300 and \
                    resp.headers.get("content-encoding", "identity") == "identity":
                set_tokens(rec, tokens_from_message(data))
                if might_carry_thinking(data):
                    self.state.signatures.learn(signatures_in_message(parse_json_or_text(data)),
                                                rec["lane"])
        flight.hook_s += time.perf_counter() - started
        self._finish(flow, flight)

    def error(self, flow: http.HTTPFlow) -> None:
        flight = flow.metadata.get(_FLIGHT)
        if flight is None or flight.done:
            return
        rec = flight.rec
        message = flow.error.msg if flow.error else "connection failed"
        client_side = "client" in message.lower()
        if flight.meter is not None:  # the stream broke while it was being relayed
            rec["err_type"] = "client_abort" if client_side else "net"
            rec["reason"] = "client_disconnected" if client_side else "upstream_reset"
            self._end_stream(flight, ended=False)
        elif client_side:
            rec["err_type"], rec["reason"] = "client_abort", "client_disconnected"
            rec["status"] = rec["status"] or 499
        else:  # no answer from the upstream: mitmproxy answers the client with its own 502
            rec["err_type"], rec["reason"] = "net", message[:200]
            rec["status"] = rec["status"] or 502
        log.warning("[%s] %s %s: %s", rec["rid"], flow.request.method, rec["path"], message)
        self._finish(flow, flight)

    # the steps
    def _route(self, flow: http.HTTPFlow, flight: Flight) -> None:
        state, rec = self.state, flight.rec
        # the request's own credentials are secrets too, for a partial written about it
        credentials = inbound_tokens(flow.request.headers.items())
        flight.timing["save_partial"] = lambda rid, chunks: state.save_partial(rid, chunks,
                                                                               credentials)
        body = flow.request.content or b""  # mitmproxy decodes a content-encoding for us
        content_type = flow.request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        payload, exact = check_payload(body, content_type, rec)
        if state.settings.body_tee:  # ENABLE_BODY_TEE: a redacted sample, written at the end
            payload, exact = (payload if exact else exact_reading(body, payload)), True
            flight.timing.update(payload=payload, credentials=credentials)
        model = payload["model"]
        stream = payload.get("stream") is True
        rec.update(model=model, op="stream" if stream else "nonstream")
        decision, provider = route(state, model, ANTHROPIC, rec)
        if rec["path"].endswith("/count_tokens"):
            rec["op"] = "count_tokens"
        if provider.protocol != ANTHROPIC:
            raise _NotInMitm(f"the route for {model!r} goes to {provider.name}, an "
                             f"{provider.protocol} provider: ccp mitm does not convert protocols "
                             "(point the client at `ccp serve` for that route)")
        if not exact and rewrites_body(payload, body, ANTHROPIC, provider, decision.upstream_model,
                                       state):
            payload = exact_reading(body, payload)
        _, up_body = upstream_body(payload, body, ANTHROPIC, provider, decision.lane,
                                   decision.upstream_model, state, rec)
        path = "/v1/messages/count_tokens" if rec["op"] == "count_tokens" else "/v1/messages"
        query = flow.request.path.split("?", 1)[1] if "?" in flow.request.path else ""
        url = upstream_url(provider, path, query)
        headers = provider_headers(flow.request.headers.items(), state, provider, decision.lane)
        flow.request.url = url
        flow.request.headers = http.Headers(
            [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()])
        flow.request.host_header = urlsplit(url).netloc
        flow.request.content = up_body  # sets content-length (hygiene dropped the client's)
        rec["upstream"] = urlsplit(url).hostname

    def _answer_error(self, flow: http.HTTPFlow, flight: Flight, exc: ShimError) -> None:
        rec = flight.rec
        rec["status"] = exc.status
        rec["err_type"] = rec["err_type"] or exc.err_type
        log.warning("[%s] %s %s -> %d %s: %s", rec["rid"], flow.request.method, rec["path"],
                    exc.status, exc.err_type, exc.message)
        headers = {"content-type": "application/json", RID_HEADER: rec["rid"]}
        if rec["lane"]:
            headers[LANE_HEADER] = rec["lane"]
        flight.answered = True
        flow.response = http.Response.make(exc.status, error_body(exc.error_type, exc.message,
                                                                   ANTHROPIC), headers)

    def _end_stream(self, flight: Flight, ended: bool) -> None:
        """`ended`: the upstream finished its answer (else the flow broke, already classified)."""
        rec, meter = flight.rec, flight.meter
        end = time.time()
        self.state.metrics.inflight_streams.dec()
        rec["bytes_out"] = meter.bytes
        rec["sse"] = meter.summary(ms(flight.stream_start, end))
        if flight.first_chunk is not None:
            rec["ttfb_ms"] = ms(flight.t0, flight.first_chunk)
        if ended and not meter.complete:
            rec["err_type"] = rec["err_type"] or "net"
            rec["reason"] = "stream_incomplete"
        self.state.signatures.learn(meter.signatures, rec["lane"])
        account_stream_end(rec, meter, flight.timing, flight.relayed, meter.complete)
        if rec["reason"] is None:
            rec["reason"] = "streaming"
        flight.meter = None

    def _finish(self, flow: http.HTTPFlow, flight: Flight) -> None:
        """The end of every routed flow: exactly one record."""
        rec = flight.rec
        flight.done = True
        end = (flow.response.timestamp_end if flow.response is not None and flow.response.timestamp_end
               else None) or time.time()
        rec["latency_ms"] = ms(flight.t0, end)
        rec["overhead_ms"] = round(flight.hook_s * 1000.0, 3)
        if rec.get("ttfb_ms") is None and rec["status"] and rec["status"] < 499:
            rec["ttfb_ms"] = rec["latency_ms"]
        if flight.timing.get("payload") is not None:
            self._tee(flight)
        self.state.record(rec)

    def _tee(self, flight: Flight) -> None:
        from proxy.sinks.tee import write_tee
        timing = flight.timing
        head = timing.get("body") or b"".join(flight.relayed)[:4096]
        try:
            write_tee(self.state.settings.logs_dir, flight.rec["rid"], timing["payload"], head,
                      self.state.redaction_secrets(timing.get("credentials") or ()))
        except OSError:
            log.exception("[%s] could not write the body tee", flight.rec["rid"])


class _NotInMitm(BadRequest):
    """A route this front end cannot serve (an OpenAI-protocol provider)."""

    status = 501
