"""A POST is never sent twice unless nothing was written (issue 21, point 4).

Every upstream client (the lanes below: the shim's own HTTP/1.1 client, httpx over HTTP/2 and
HTTP/1.1, aiohttp; TLS and cleartext) is run by a real shim process against `PhaseMock`, which
breaks the next connection or request at one phase and answers `ok` after it. One request goes
through the shim per case, stream and non-stream, and what the mock saw is the verdict:

    phase        what left the shim          copies   attempts   the client gets
    refuse       nothing (TLS: no handshake)    1        2        200 (the one retry)
    tls_close    nothing (a broken handshake)   1        2        200
    mid_write    part of the request            0        1        502, Anthropic error JSON
    after_write  the whole request              1        1        502
    mid_answer   the whole request              1        1        502, or a 200 stream that
                                                                  ends in an `error` event
    idle close   (a kept connection the upstream closed while idle, then a request)
                 the whole request, on a new    1        1        200
                 connection
    busy         429, then ok: the configured   2        2        200 (CCP_ENABLE_BACKOFF)
                 backoff, nothing more

"attempts" is what the mock's plan says: a phase fault followed by `ok`, the `ok` is still pending
when no second attempt was made. On cleartext `refuse` (accepted, then closed) is not "nothing
written": there is no handshake to wait for, so the client writes at once and the request left; it
must not be retried, and the case holds the rule either way (502 with no copy, or, when the client
saw the close before writing, 200 with one). Every request has exactly one usage record.

One shim and one mock per lane, for the module; backoff is on (a 429 waits 1 ms) so that the other
phases show it adds no retry of its own.
"""
from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import NamedTuple

import httpx
import pytest

from harness import keys as harness_keys
from harness.phase_mock import PhaseMock
from harness.probes import ANTHROPIC_VERSION, message_body
from harness.shim import ShimProcess

pytestmark = [pytest.mark.faults]

MODEL = "claude-sonnet-4-5"  # the anthropic lane
OPS = ("nonstream", "stream")
# lane → (TLS upstream, the shim's environment for that client)
LANES: dict[str, tuple[bool, dict[str, str]]] = {
    "h1-plain": (False, {}),
    "h1-https": (True, {}),
    "httpx-h2": (True, {"CCP_HTTP2": "1"}),
    "httpx-h1-https": (True, {"CCP_UPSTREAM_CLIENT": "httpx", "CCP_FORCE_H1": "1"}),
    "aiohttp-https": (True, {"CCP_UPSTREAM_CLIENT": "aiohttp"}),
    "httpx-plain": (False, {"CCP_UPSTREAM_CLIENT": "httpx"}),
    "aiohttp-plain": (False, {"CCP_UPSTREAM_CLIENT": "aiohttp"}),
}
PHASES = ("refuse", "tls_close", "mid_write", "after_write", "mid_answer")


class Lane(NamedTuple):
    name: str
    mock: PhaseMock
    shim: ShimProcess


class Seen(NamedTuple):
    status: int
    rid: str
    raw: bytes


@pytest.fixture(scope="module")
def lanes(tmp_path_factory) -> Iterator[Callable[[str], Lane]]:
    """lanes(name): the lane's mock and shim, started on first use (a worker that never gets a
    lane's test never starts its shim)."""
    started: dict[str, Lane] = {}

    def get(name: str) -> Lane:
        if name not in started:
            tls, env = LANES[name]
            mock = PhaseMock(tls=tls).start()
            overlay = {**harness_keys.lane_env(mock.base_url, mock.base_url),
                       "CCP_ENABLE_BACKOFF": "1", **env}
            if tls:
                overlay["CCP_CA_BUNDLE"] = mock.ca_path
            try:
                shim = ShimProcess(tmp_path_factory.mktemp(f"post-once-{name}"), overlay).start()
            except BaseException:
                mock.stop()
                raise
            started[name] = Lane(name, mock, shim)
        return started[name]

    yield get
    for lane in started.values():
        lane.shim.stop()
        lane.mock.stop()


def _send(shim: ShimProcess, nonce: str, op: str) -> Seen:
    body = json.dumps(message_body(MODEL, f"Say hi ({nonce})", op == "stream")).encode()
    headers = {"x-api-key": harness_keys.test_keys()["CLIENT_API_KEY"],
               "anthropic-version": ANTHROPIC_VERSION, "content-type": "application/json"}
    with httpx.Client(trust_env=False, timeout=30) as client:
        with client.stream("POST", f"{shim.url}/v1/messages", headers=headers,
                           content=body) as resp:
            raw = b"".join(resp.iter_raw())
            return Seen(resp.status_code, resp.headers["x-ccp-request-id"], raw)


def _events(raw: bytes) -> list[str]:
    return [line[len("event: "):] for line in raw.decode("utf-8", "replace").splitlines()
            if line.startswith("event: ")]


def _is_error_json(raw: bytes) -> bool:
    obj = json.loads(raw)
    return obj["type"] == "error" and obj["error"]["type"] == "api_error"


def _quiet(mock: PhaseMock) -> None:
    """No connection open (the previous case's all ended), then forget the counts."""
    mock.wait_for(lambda: mock.open_connections() == 0, what="every connection to end")
    mock.reset()


def _one(lane: Lane, op: str, *plan: str, settle: bool = True) -> tuple[str, Seen, dict]:
    """One request through the lane's shim with `plan` queued; (nonce, what the client saw, the
    one record), once every connection to the mock has ended (`settle`)."""
    _quiet(lane.mock)
    lane.mock.plan(*plan)
    nonce = f"nonce-{uuid.uuid4().hex}"
    before = len(lane.shim.records())
    seen = _send(lane.shim, nonce, op)
    rec = lane.shim.record_for(seen.rid)
    records = lane.shim.records()
    assert len(records) == before + 1 and [r for r in records if r["rid"] == seen.rid] == [rec]
    assert rec["status"] == seen.status and rec["op"] == op, rec
    if settle:
        lane.mock.wait_for(lambda: lane.mock.open_connections() == 0, what="the connections to end")
    return nonce, seen, rec


def check_phase(lane: Lane, phase: str, op: str) -> str:
    """One phase fault then `ok`, one request; asserts what the mock and the client saw and
    returns the matrix cell (`<status> <copies>c <attempts>a`)."""
    mock = lane.mock
    nonce, seen, rec = _one(lane, op, phase, "ok")
    copies = mock.copies(nonce)
    attempts = 2 - len(mock.pending)
    assert copies <= 1 and len(mock.requests) <= 2, mock.requests
    if phase in ("refuse", "tls_close") and mock.tls:  # nothing written: tried once more, once
        assert (seen.status, copies, attempts) == (200, 1, 2), (seen, mock.requests)
        assert mock.connections == 2 and mock.handshakes == 1
    elif phase == "refuse":  # cleartext: the request may have left; never a second copy
        assert (seen.status, copies) in ((502, 0), (200, 1)), (seen, mock.requests)
        if seen.status == 502:
            assert attempts == 1 and _is_error_json(seen.raw)
    elif phase == "mid_write":
        assert (seen.status, copies, mock.partials, attempts) == (502, 0, 1, 1), seen
        assert _is_error_json(seen.raw) and rec["err_type"] == "net"
    elif phase == "after_write":
        assert (seen.status, copies, attempts) == (502, 1, 1), seen
        assert _is_error_json(seen.raw) and rec["err_type"] == "net"
    else:  # mid_answer
        assert (copies, attempts) == (1, 1), mock.requests
        if seen.status == 200:  # a stream already under way: it ends in an error event
            assert op == "stream" and _events(seen.raw)[-1] == "error", seen.raw[-300:]
            assert "message_stop" not in _events(seen.raw)
        else:
            assert seen.status == 502 and _is_error_json(seen.raw), seen
    if seen.status == 200 and op == "nonstream":
        assert json.loads(seen.raw)["type"] == "message"
    if seen.status == 200 and phase != "mid_answer" and op == "stream":
        assert _events(seen.raw)[-1] == "message_stop"
    return f"{seen.status} {copies}c {attempts}a"


def check_idle_close(lane: Lane, op: str) -> str:
    """A kept connection the upstream closes while idle, then a request: one copy, a 200."""
    first, seen, _rec = _one(lane, op, "keep", settle=False)
    assert seen.status == 200 and lane.mock.copies(first) == 1
    lane.mock.wait_for(lambda: lane.mock.idle_connections() == 1, what="the kept connection idle")
    assert lane.mock.close_idle() == 1, "the kept connection was not idle at the mock"
    nonce, seen, _rec = _one(lane, op, "ok")  # (waits until it is closed, then counts afresh)
    assert (seen.status, lane.mock.copies(nonce), lane.mock.pending) == (200, 1, []), (
        seen, lane.mock.requests)
    assert lane.mock.connections == 1 and len(lane.mock.requests) == 1  # a new one, one request
    return f"{seen.status} 1c 1a"


def check_backoff(lane: Lane) -> str:
    """429 then ok with CCP_ENABLE_BACKOFF: the configured retry, the only second copy there is."""
    nonce, seen, rec = _one(lane, "nonstream", "busy", "ok")
    assert (seen.status, lane.mock.copies(nonce), lane.mock.pending) == (200, 2, [])
    assert rec.get("retries") == 1, rec
    return "200 2c 2a"


@pytest.mark.parametrize("lane_name", list(LANES))
def test_no_post_is_sent_twice(lanes, lane_name):
    """Every phase × op, the idle close and backoff on one lane (one shim start per lane and
    worker); every failed cell is reported, with the matrix."""
    lane = lanes(lane_name)
    cells: dict[str, str] = {}
    failures: list[str] = []
    checks = [(f"{phase}/{op}", check_phase, (lane, phase, op)) for phase in PHASES
              for op in OPS if phase != "tls_close" or lane.mock.tls]
    checks += [(f"idle_close/{op}", check_idle_close, (lane, op)) for op in OPS]
    checks.append(("busy/nonstream", check_backoff, (lane,)))
    for name, check, args in checks:
        try:
            cells[name] = check(*args)
        except AssertionError as exc:
            cells[name] = "FAIL"
            failures.append(f"{name}: {exc}")
    print(f"{lane_name}: " + ", ".join(f"{k}={v}" for k, v in cells.items()))
    assert not failures, "\n".join(failures)
