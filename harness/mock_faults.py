"""Fault specs for the mock upstreams: one small grammar, one pure parser, one error-body builder.

A spec is a fault kind followed by optional `;key=value` parameters:

    status=529                  answer with that 4xx/5xx status and the protocol's error JSON
    reset_before_headers        abort the TCP connection before anything is sent
    reset_mid_stream;after=3    send `after` SSE events, then abort the connection
    stall;seconds=5             send headers + message_start, then stay silent up to `seconds`
    stall_before_headers;seconds=5
    slow_drip;delay_ms=50       a normal stream with a pause between events
    split_utf8                  one delta is written in two writes split inside a UTF-8 sequence
    malformed_event             one event's data is not valid JSON; the rest is normal
    gzip                        the answer gzip-encoded (`content-encoding: gzip`) whatever the
                                request's accept-encoding said, as a CDN in front of a provider may
    no_stop                     a stream that ends cleanly but without its last event
                                (message_stop, or OpenAI's [DONE])
    json_trickle;seconds=30     a 200 `application/json` answer (also to a stream request) whose
                                body comes a byte at a time and never ends, for up to `seconds`
    hold;after=1;seconds=5      send `after` SSE events, then hold the rest until the test releases
                                it (`MockUpstream.release()`: the client has seen those events) or
                                `seconds` pass; the call records which came first

`parse_fault` raises `ValueError` naming what is wrong; the caller turns that into an HTTP 400 or a
usage error at its edge. `stream_plan` applies the faults that reshape an SSE stream into the
writes the server makes. `error_body` and `stream_plan` take a `protocol`: "anthropic" (Messages
API, the default) or "openai" (Chat Completions). Nothing here does I/O.
"""
from __future__ import annotations

from typing import Any, NamedTuple

# kind -> {parameter: (caster, default, minimum, maximum)}
_PARAMS: dict[str, dict[str, tuple[type, float, float, float]]] = {
    "reset_before_headers": {},
    "reset_mid_stream": {"after": (int, 3, 0, 10_000)},
    "stall": {"seconds": (float, 5.0, 0.0, 3600.0)},
    "stall_before_headers": {"seconds": (float, 5.0, 0.0, 3600.0)},
    "slow_drip": {"delay_ms": (int, 50, 0, 60_000)},
    "split_utf8": {},
    "malformed_event": {},
    "gzip": {},
    "no_stop": {},
    "json_trickle": {"seconds": (float, 30.0, 0.0, 3600.0)},
    "hold": {"after": (int, 1, 1, 10_000), "seconds": (float, 5.0, 0.0, 3600.0)},
}
KINDS = ("status", *_PARAMS)

SPLIT_UTF8_SUFFIX = " caf\u00e9 \U0001F642"  # appended when a split_utf8 reply is plain ASCII
SPLIT_PAUSE = 0.02  # between the two halves of a split write, so they leave as two segments

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
OPENAI_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    422: "unprocessable_entity_error",
    429: "rate_limit_error",
}
PROTOCOLS = ("anthropic", "openai")


class Fault(NamedTuple):
    """A parsed fault; only the fields that matter for `kind` are set."""

    kind: str
    status: int = 0
    after: int = 0
    seconds: float = 0.0
    delay_ms: int = 0

    def spec(self) -> str:
        """The canonical spec string (what `parse_fault` accepts and calls record)."""
        if self.kind == "status":
            return f"status={self.status}"
        params = [f"{key}={getattr(self, key):g}" for key in _PARAMS[self.kind]]
        return ";".join([self.kind, *params])


def parse_fault(spec: str) -> Fault:
    """Parse a fault spec such as `status=529` or `reset_mid_stream;after=3` into a `Fault`."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError("empty fault spec")
    head, *rest = [part.strip() for part in spec.strip().split(";")]
    if head.startswith("status="):
        if rest:
            raise ValueError(f"fault 'status' takes no other parameters: {spec!r}")
        value = head.partition("=")[2]
        if not value.isdigit() or not 400 <= int(value) <= 599:
            raise ValueError(f"fault status must be a 4xx/5xx code, got {value!r}")
        return Fault("status", status=int(value))
    if head not in _PARAMS:
        raise ValueError(f"unknown fault kind {head!r}; known: {', '.join(KINDS)}")
    allowed = _PARAMS[head]
    values: dict[str, Any] = {key: cast(default) for key, (cast, default, _, _) in allowed.items()}
    seen: set[str] = set()
    for part in rest:
        key, eq, raw = part.partition("=")
        if not eq or key not in allowed:
            known = ", ".join(allowed) or "none"
            raise ValueError(f"fault {head!r}: bad parameter {part!r} (parameters: {known})")
        if key in seen:
            raise ValueError(f"fault {head!r}: parameter {key!r} given twice")
        seen.add(key)
        cast, _, low, high = allowed[key]
        try:
            value = cast(raw)
        except ValueError:
            raise ValueError(f"fault {head!r}: {key} must be {cast.__name__}, got {raw!r}") from None
        if not low <= value <= high:
            raise ValueError(f"fault {head!r}: {key} must be within {low:g}..{high:g}, got {raw!r}")
        values[key] = value
    return Fault(head, **values)


def _check(protocol: str) -> None:
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")


def error_type(status: int, protocol: str = "anthropic") -> str:
    """The error `type` for an HTTP status, as the protocol's servers name it."""
    _check(protocol)
    if protocol == "openai":
        fallback = "invalid_request_error" if status < 500 else "server_error"
        return OPENAI_ERROR_TYPES.get(status, fallback)
    return ERROR_TYPES.get(status, "api_error")


def error_body(status: int, message: str = "mock fault", protocol: str = "anthropic") -> dict[str, Any]:
    """The error JSON for `status`: Anthropic's `{"type":"error",...}` or OpenAI's `{"error":{...}}`."""
    etype = error_type(status, protocol)
    if protocol == "openai":
        return {"error": {"message": message, "type": etype, "param": None, "code": None}}
    return {"type": "error", "error": {"type": etype, "message": message}}


def _is_delta(event: bytes, protocol: str) -> bool:
    """A content-carrying event: Anthropic's content_block_delta; an OpenAI chunk whose delta carries
    content, reasoning or tool calls (not the opening role chunk, nor the empty finishing delta)."""
    if protocol == "openai":
        return b'"delta":{"' in event and b'"delta":{"role"' not in event
    return event.startswith(b"event: content_block_delta")


def stream_plan(events: list[bytes], fault: Fault | None,
                protocol: str = "anthropic") -> list[tuple[float, bytes]]:
    """(pause before, bytes) per write: `events` reshaped by malformed_event, slow_drip, split_utf8."""
    _check(protocol)
    kind = fault.kind if fault else None
    events = list(events)
    first_delta = next((i for i, e in enumerate(events) if _is_delta(e, protocol)), 2)
    if kind == "malformed_event":  # drop the closing brace of one event's JSON
        events[first_delta] = events[first_delta][:-3] + b"\n\n"
    if kind == "no_stop":  # the final event goes missing; the connection still ends cleanly
        events = events[:-1]
    pause = fault.delay_ms / 1000 if kind == "slow_drip" else 0.0
    plan = [(pause if i else 0.0, e) for i, e in enumerate(events)]
    if kind == "split_utf8":
        for i, event in enumerate(events):
            lead = next((j for j, b in enumerate(event) if b >= 0xC0), None)
            if lead is not None and _is_delta(event, protocol):
                plan[i:i + 1] = [(0.0, event[:lead + 1]), (SPLIT_PAUSE, event[lead + 1:])]
                break
    return plan
