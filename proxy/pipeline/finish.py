"""Step 4 of the pipeline: the record, whatever happened — and a session's trajectory pair and the
body tee, which belong with it.

`finish()` runs in the front door's `finally`: after an answer, an error answered in the
protocol's shape, an upstream failure or a client that left, so every request that reached the
shim has exactly one record. The overhead is the shim's own time: arrival to the upstream request
leaving, plus the upstream's last byte to the end.
"""

from __future__ import annotations

import logging
import time

from proxy.core.sse import assemble_message
from proxy.pipeline.context import SAME, Exchange
from proxy.pipeline.relay import ms
from proxy.protocols import ANTHROPIC
from proxy.sinks.health import TEE, TRAJECTORY
from proxy.sinks.trajectory import parse_json_or_text

log = logging.getLogger("ccp.shim")

TEE_HEAD_BYTES = 4096


def finish(ex: Exchange) -> None:
    rec = ex.rec
    t_end = time.perf_counter()
    rec["latency_ms"] = ms(ex.t0, t_end)
    if ex.sent is not None:
        pre = ex.sent - ex.t0
        post = t_end - (ex.upstream_done or t_end)
        rec["overhead_ms"] = round((pre + post) * 1000.0, 3)
    else:
        rec["overhead_ms"] = rec["latency_ms"]
    if rec["ttfb_ms"] is None and rec["status"] and rec["status"] < 499:
        rec["ttfb_ms"] = rec["latency_ms"]
    if ex.trace_ts is not None:
        write_answer(ex)
    if ex.tee_payload is not None:
        _tee(ex)
    ex.state.record(rec)


def write_query(ex: Exchange, payload: dict) -> None:
    """The query half of a session's trajectory pair: what the provider was sent."""
    state, rec, session = ex.state, ex.rec, ex.session
    assert session is not None
    ex.trace_ts = state.trajectories.new_ts()
    ex.trace_secrets = state.redaction_secrets(ex.credentials)
    meta = {
        "rid": rec["rid"],
        "session": session.id,
        "sandbox_id": session.sandbox_id,
        "task_name": session.task_name,
        "instance": state.settings.instance or None,  # which shim of a fleet answered
        "route": rec["lane"],
        "provider": rec["provider"],
        "model": rec["model"],
        "upstream_model": rec["upstream_model"],
        "path": rec["path"],
        "protocol_in": rec["protocol_in"],
        "protocol_out": rec["protocol_out"],
    }
    health = state.sinks[TRAJECTORY]
    try:
        state.trajectories.write_query(session.id, ex.trace_ts, payload, meta, ex.trace_secrets)
    except OSError as exc:  # counted and said once a kind (proxy.sinks.health), never the client's
        health.failed(exc)
    else:
        health.ok()


def write_answer(ex: Exchange) -> None:
    """The answer half of a trajectory pair, also when the exchange failed."""
    rec = ex.rec
    if ex.events:
        raw = b"".join(ex.events)
        message = assemble_message(raw) if ex.upstream_protocol == ANTHROPIC else None
        upstream = {"message": message, "events": raw.decode("utf-8", "replace")}
    elif ex.upstream_body is not None:
        upstream = parse_json_or_text(ex.upstream_body)
    else:
        upstream = None
    meta = {
        "rid": rec["rid"],
        "session": rec["session"],
        "status": rec["status"],
        "upstream_status": rec["upstream_status"],
        "err_type": rec["err_type"],
        "reason": rec["reason"],
    }
    # passthrough: what went down is what came up; a conversion says what it sent down
    downstream = upstream if ex.downstream is SAME else ex.downstream
    session, ts, secrets = rec["session"], ex.trace_ts, ex.trace_secrets
    assert session is not None and ts is not None and secrets is not None  # (write_query's)
    health = ex.state.sinks[TRAJECTORY]
    try:
        ex.state.trajectories.write_answer(session, ts, meta, upstream, downstream, secrets)
    except OSError as exc:
        health.failed(exc)
    else:
        health.ok()


def _tee(ex: Exchange) -> None:
    from proxy.sinks.tee import write_tee

    state, rec = ex.state, ex.rec
    head = ex.upstream_body or b"".join(ex.events or [])[:TEE_HEAD_BYTES]
    health = state.sinks[TEE]
    try:
        write_tee(
            state.settings.logs_dir,
            rec["rid"],
            ex.tee_payload,
            head,
            state.redaction_secrets(ex.credentials),
        )
    except OSError as exc:
        health.failed(exc)
    else:
        health.ok()
