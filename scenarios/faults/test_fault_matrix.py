"""The fault matrix: every upstream and client failure, stream and non-stream, written as data.

Each row of `MATRIX` is one case × op: how the fault is made (an `x-mock-fault` spec, a closed port,
a client that leaves), what the client must see — a status with the Anthropic error JSON, a 200
stream whose last event is an Anthropic `error` event, or a complete byte-exact relay — and what the
one usage record says (`err_type`, `reason`, `sse.complete`). After every case the shim still answers
`/healthz`, and the mock saw its call finish or its client (the shim) go away.

One shim serves the module, with short timeouts so stalls are cut in a second or two (the mock's
stalls last 30 s and end when the shim leaves); a second shim's anthropic lane is a closed port.
The leak tests run the whole matrix twice and compare the shim's open file descriptors (and, when
the shim has `GET /metrics`, its `ccp_tasks` / `ccp_inflight_streams` gauges) after each pass.
"""
from __future__ import annotations

import json
import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import pytest

from harness import keys as harness_keys
from harness.mock_faults import error_type
from harness.mock_upstream import MockUpstream
from harness.probes import ANTHROPIC_VERSION, message_body
from harness.shim import ShimProcess, wait_until

pytestmark = [pytest.mark.faults]

MODEL = "claude-sonnet-4-5"  # the anthropic lane: the mock whose faults we script
TIMEOUTS = {"CCP_SSE_IDLE_TIMEOUT": "1s", "CCP_JSON_TIMEOUT": "2s", "CCP_HEADER_TIMEOUT": "2s"}
STALL = "seconds=30"  # far longer than any shim timeout; the mock ends it when the shim leaves
BIG_PROMPT = f"Reply with exactly: {'0123456789abcdef' * 131_072} and nothing else."  # 2 MiB back
FD_SLACK = 4  # pooled keep-alive connections may come and go between two counts
PASS_SLACK = 1  # pass 2 repeats pass 1 exactly: one fd leaked per pass would already show
ANY: Any = "<any>"  # a record field the case does not pin down
OPS = ("stream", "nonstream")
STATUSES = (400, 401, 403, 404, 413, 429, 500, 502, 503, 529)


@dataclass(frozen=True)
class Case:
    """One fault × op and its expected outcome."""

    name: str
    op: str                         # "stream" | "nonstream"
    fault: str | None = None        # the x-mock-fault spec
    status: int = 200               # the client's status, and the record's
    error: str | None = None        # Anthropic error.type: the JSON body (status >= 400) or last event
    err_type: str | None = None     # the record's err_type
    reason: str | None = ANY        # the record's reason
    complete: bool | None = None    # the record's sse.complete (streams the relay saw)
    upstream_status: int | None = ANY
    exact: bool = False             # the client got exactly the bytes the mock sent
    target: str = "mock"            # "mock", or "refused": the shim whose lane is a closed port
    deltas: int | None = None       # x-mock-deltas
    prompt: str = "Say hi"
    leave: bool = False             # the client goes away before the answer is complete

    @property
    def id(self) -> str:
        return f"{self.name}-{self.op}"


def _streaming(op: str, **kw: Any) -> dict[str, Any]:
    """What a stream that reached the relay adds to its row."""
    return kw if op == "stream" else {}


MATRIX: list[Case] = [
    *(Case(f"status_{s}", op, f"status={s}", status=s, error=error_type(s),
           err_type="upstream_5xx" if s >= 500 else "upstream_4xx", upstream_status=s, exact=True)
      for s in STATUSES for op in OPS),
    *(Case("refused", op, target="refused", status=502, error="api_error", err_type="net",
           upstream_status=None) for op in OPS),
    *(Case("reset_before_headers", op, "reset_before_headers", status=502, error="api_error",
           err_type="net", upstream_status=None) for op in OPS),
    Case("reset_mid_stream", "stream", "reset_mid_stream;after=3", error="api_error", err_type="net",
         reason="upstream_reset", complete=False, upstream_status=200),
    # the mock sends the headers and half of the JSON body, then drops the connection
    Case("truncated_json", "nonstream", "reset_mid_stream", status=502, error="api_error",
         err_type="net", upstream_status=200),
    *(Case("stall_before_headers", op, f"stall_before_headers;{STALL}", status=504, error="timeout_error",
           err_type="timeout", upstream_status=None) for op in OPS),
    # headers and message_start, then silence: cut by CCP_SSE_IDLE_TIMEOUT, told by an error event
    Case("stall_mid_stream", "stream", f"stall;{STALL}", error="timeout_error", err_type="idle_timeout",
         reason="stream_timeout", complete=False, upstream_status=200),
    # a passthrough relays bytes, it does not judge them: message_stop still arrives, so it is complete
    Case("malformed_sse", "stream", "malformed_event", exact=True, reason="streaming", complete=True,
         upstream_status=200),
    # "oversized" is large, not an error: no documented size limit applies to answers. 2 MiB of
    # text in 4,000 deltas (the mock's cost grows with the square of the number of writes)
    Case("oversized", "stream", deltas=4_000, prompt=BIG_PROMPT, exact=True, reason="streaming",
         complete=True, upstream_status=200),
    Case("oversized", "nonstream", prompt=BIG_PROMPT, exact=True, upstream_status=200),
    # a CDN that compresses although the shim asked for identity: decoded, metered, whole
    Case("gzip", "stream", "gzip", reason="streaming", complete=True, upstream_status=200),
    Case("gzip", "nonstream", "gzip", upstream_status=200),
    # ends cleanly, but without message_stop: every byte relayed, then an error event
    Case("no_stop", "stream", "no_stop", error="api_error", err_type="net",
         reason="stream_incomplete", complete=False, upstream_status=200),
    # a stream request answered with a JSON body that never ends: cut at CCP_JSON_TIMEOUT
    Case("json_trickle", "stream", f"json_trickle;{STALL}", status=504, error="timeout_error",
         err_type="timeout", upstream_status=200),
    Case("client_disconnect", "stream", "slow_drip;delay_ms=200", deltas=200, leave=True,
         err_type="client_abort", reason="client_disconnected", complete=False, upstream_status=200),
    Case("client_disconnect", "nonstream", f"stall_before_headers;{STALL}", status=499, leave=True,
         err_type="client_abort", reason="client_disconnected", upstream_status=None),
]


class Shims(NamedTuple):
    main: ShimProcess
    refused: ShimProcess


class Seen(NamedTuple):
    status: int | None
    rid: str | None
    raw: bytes


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def shims(_mock_pair, tmp_path_factory):
    anthropic, zai = _mock_pair
    base = tmp_path_factory.mktemp("fault-matrix")
    env = {**harness_keys.lane_env(anthropic.base_url, zai.zai_base_url), **TIMEOUTS}
    main = ShimProcess(base / "main", env, ready_path="/readyz").start()
    refused = ShimProcess(base / "refused",
                          {**env, "CCP_ANTHROPIC_BASE_URL": f"http://127.0.0.1:{_closed_port()}"})
    try:
        refused.start()
    except BaseException:
        main.stop()
        raise
    yield Shims(main, refused)
    refused.stop()
    main.stop()


def _headers(case: Case) -> dict[str, str]:
    headers = {"x-api-key": harness_keys.test_keys()["CLIENT_API_KEY"], "anthropic-version": ANTHROPIC_VERSION,
               "content-type": "application/json"}
    if case.fault:
        headers["x-mock-fault"] = case.fault
    if case.deltas is not None:
        headers["x-mock-deltas"] = str(case.deltas)
    return headers


def _send(shim: ShimProcess, case: Case, mock: MockUpstream) -> Seen:
    body = json.dumps(message_body(MODEL, case.prompt, case.op == "stream")).encode()
    if case.leave and case.op == "nonstream":
        return _send_and_leave(shim, case, body, mock)
    with httpx.Client(trust_env=False, timeout=30) as client:
        with client.stream("POST", f"{shim.url}/v1/messages", headers=_headers(case),
                           content=body) as resp:
            rid = resp.headers.get("x-ccp-request-id")
            if case.leave:  # one chunk, then the connection closes mid-stream
                return Seen(resp.status_code, rid, next(resp.iter_raw()))
            return Seen(resp.status_code, rid, b"".join(resp.iter_raw()))


def _send_and_leave(shim: ShimProcess, case: Case, body: bytes, mock: MockUpstream) -> Seen:
    """A raw request whose client closes once the upstream has it (no answer is ever read)."""
    head = "".join(f"{k}: {v}\r\n" for k, v in _headers(case).items())
    with socket.create_connection(("127.0.0.1", shim.port), timeout=10) as sock:
        sock.sendall(f"POST /v1/messages HTTP/1.1\r\nhost: 127.0.0.1\r\n{head}"
                     f"content-length: {len(body)}\r\n\r\n".encode() + body)
        mock.wait_for_calls(1, timeout=10)
    return Seen(None, None, b"")


def _sse_events(raw: bytes) -> list[tuple[str, str]]:
    out = []
    for block in raw.decode("utf-8", "replace").replace("\r\n", "\n").split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.split("\n") if ": " in line)
        if fields:
            out.append((fields.get("event", ""), fields.get("data", "")))
    return out


def _check_error_json(text: str, error: str) -> None:
    obj = json.loads(text)
    assert obj["type"] == "error" and set(obj["error"]) >= {"type", "message"}, obj
    assert obj["error"]["type"] == error and isinstance(obj["error"]["message"], str), obj


def _settled(call) -> bool:
    return call.finished or call.client_disconnected or (call.fault or "").startswith("reset")


def run_case(case: Case, shims: Shims, mock: MockUpstream) -> dict:
    """Make the fault, check what the client, the record and the mock saw; returns the record."""
    shim = shims.refused if case.target == "refused" else shims.main
    mock.reset()
    before = len(shim.records())
    seen = _send(shim, case, mock)

    # exactly one new record: found by rid, or (client gone before the headers) as the next line
    rec = shim.record_for(seen.rid) if seen.rid else shim.wait_for_records(before + 1)[before]
    records = shim.records()
    assert len(records) == before + 1 and records[-1]["rid"] == rec["rid"], records[before:]
    assert (rec["lane"], rec["op"], rec["model"]) == ("anthropic", case.op, MODEL), rec
    assert rec["status"] == case.status, rec
    assert rec["err_type"] == case.err_type, rec
    if case.reason is not ANY:
        assert rec["reason"] == case.reason, rec
    if case.upstream_status is not ANY:
        assert rec["upstream_status"] == case.upstream_status, rec
    if case.complete is not None:
        assert rec["sse"] and rec["sse"]["complete"] is case.complete, rec

    # what the upstream saw: one call (none on a closed port), finished or left by the shim
    calls = mock.wait_until(lambda: all(_settled(c) for c in mock.calls), timeout=10)
    assert len(calls) == (0 if case.target == "refused" else 1), calls
    sent = calls[0].sent if calls else b""
    if case.leave:
        assert calls[0].client_disconnected and not calls[0].finished, calls[0]

    # what the client saw
    if seen.status is not None:
        assert seen.status == case.status and seen.rid == rec["rid"]
    if case.exact:
        assert seen.raw == sent, (len(seen.raw), len(sent))
        if case.name == "oversized":
            assert len(sent) > 2 * 1024 * 1024
    if case.status >= 400 and not case.leave:
        _check_error_json(seen.raw.decode(), case.error)
    elif case.error:  # a stream cut after its headers: what arrived, then an Anthropic error event
        assert sent and seen.raw.startswith(sent), seen.raw[:300]
        name, data = _sse_events(seen.raw[len(sent):])[-1]
        assert name == "error", seen.raw[-300:]
        _check_error_json(data, case.error)
    elif not case.leave:  # a clean answer, whole
        if case.op == "stream":
            assert _sse_events(seen.raw)[-1][0] == "message_stop"
        else:
            assert json.loads(seen.raw)["type"] == "message"

    # and the shim keeps serving
    assert httpx.get(f"{shim.url}/healthz", trust_env=False, timeout=5).status_code == 200
    return rec


@pytest.mark.parametrize("case", MATRIX, ids=[c.id for c in MATRIX])
def test_fault(case, shims, mock_anthropic, mock_zai):
    run_case(case, shims, mock_anthropic)
    assert mock_zai.calls == []


# ---- leaks: the whole matrix, twice ------------------------------------------------------------

def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def settled_fds(pid: int, ceiling: int, timeout: float = 10.0) -> int:
    """The fd count once it is at most `ceiling` (closing sockets lag a little); else the last one."""
    try:
        return wait_until(lambda: (n := fd_count(pid)) <= ceiling and n, timeout, "fds to settle")
    except TimeoutError:
        return fd_count(pid)


_GAUGE = re.compile(r"^(ccp_tasks|ccp_inflight_streams)(?:\{[^}]*\})?\s+([0-9.eE+-]+)\s*$", re.M)


def gauges(shim: ShimProcess) -> dict[str, float] | None:
    """`ccp_tasks` / `ccp_inflight_streams` from `GET /metrics`, or None when the shim has none."""
    r = httpx.get(f"{shim.url}/metrics", trust_env=False, timeout=5)
    if r.status_code != 200:
        return None
    found: dict[str, float] = {}
    for name, value in _GAUGE.findall(r.text):
        found[name] = found.get(name, 0.0) + float(value)
    return found or None


class Passes(NamedTuple):
    fds: list[int]                            # before, after pass 1, after pass 2
    gauges: list[dict[str, float] | None]
    records: int
    cases: int
    ours_500: int                             # 500s the upstream did not send
    tracebacks: int                           # in the shims' stderr


@pytest.fixture(scope="module")
def passes(shims, _mock_pair) -> Passes:
    anthropic, zai = _mock_pair
    zai.reset()
    pid = shims.main.proc.pid
    warm = next(c for c in MATRIX if c.name == "oversized" and c.op == "stream")
    run_case(warm, shims, anthropic)  # the pool and the writer are open before the first count
    start = len(shims.main.records()) + len(shims.refused.records())
    fds = [fd_count(pid)]
    seen_gauges = [gauges(shims.main)]
    for _ in range(2):
        for case in MATRIX:
            run_case(case, shims, anthropic)
        fds.append(settled_fds(pid, fds[0] + FD_SLACK if len(fds) == 1 else fds[1] + PASS_SLACK))
        seen_gauges.append(gauges(shims.main))
    anthropic.assert_no_unexpected()
    assert zai.calls == []
    recs = [*shims.main.records(), *shims.refused.records()]
    ours_500 = sum(1 for r in recs[start:] if r["status"] == 500 and r["upstream_status"] != 500)
    tracebacks = sum(Path(p.stderr_path).read_text(errors="replace").count("Traceback")
                     for p in (shims.main, shims.refused))
    return Passes(fds, seen_gauges, len(recs) - start, 2 * len(MATRIX), ours_500, tracebacks)


def test_matrix_twice_leaks_no_file_descriptors(passes):
    before, first, second = passes.fds
    print(f"fault matrix: {passes.cases} cases, {passes.records} records, {passes.ours_500} 500s "
          f"of the shim's own, {passes.tracebacks} tracebacks, fds before {before}, after pass 1 "
          f"{first}, after pass 2 {second}")
    assert passes.records == passes.cases  # one record per request, no more
    assert passes.ours_500 == 0 and passes.tracebacks == 0
    assert first <= before + FD_SLACK, passes.fds
    assert abs(second - first) <= PASS_SLACK, passes.fds


def test_matrix_twice_leaks_no_tasks(passes, shims):
    if passes.gauges[0] is None:
        pytest.skip("the shim has no GET /metrics with ccp_tasks / ccp_inflight_streams yet: "
                    "only file descriptors are checked")
    before, first, second = passes.gauges
    print(f"shim gauges: before {before}, after pass 1 {first}, after pass 2 {second}")
    assert first.get("ccp_inflight_streams", 0) == 0 and second.get("ccp_inflight_streams", 0) == 0
    if "ccp_tasks" in before:
        assert first["ccp_tasks"] <= before["ccp_tasks"] + PASS_SLACK, passes.gauges
        assert second["ccp_tasks"] <= first["ccp_tasks"] + PASS_SLACK, passes.gauges


# ---- abuse: what a hostile client or page sends, beside the upstream's faults ------------------

class Abuse(NamedTuple):
    name: str
    path: str
    body: bytes
    headers: dict[str, str]
    status: int          # what the client must get (and the record says)
    error: str | None    # Anthropic error.type of the answer (None: the upstream's 200)


_MSG = '{"model":"%s","max_tokens":16,"messages":[{"role":"user","content":%s}]}'
ABUSE: list[Abuse] = [
    Abuse("lone_surrogate", "/v1/messages", (_MSG % (MODEL, '"cut mid-pair \\ud83d"')).encode(),
          {}, 200, None),
    Abuse("nul_and_odd_escapes", "/v1/messages", (_MSG % (MODEL, '"a\\u0000b\\/c\\f"')).encode(),
          {}, 200, None),
    # a passthrough forwards what it does not need to read: the upstream judges the field (a
    # converted route names it in a 400: scenarios/faults/test_any_bytes.py)
    Abuse("content_is_a_number", "/v1/messages", (_MSG % (MODEL, "42")).encode(), {}, 200, None),
    Abuse("model_is_a_list", "/v1/messages", b'{"model":["x"],"max_tokens":1,"messages":[]}', {},
          400, "invalid_request_error"),
    Abuse("model_of_a_megabyte", "/v1/messages", (_MSG % ("m" * 1_000_000, '"hi"')).encode(), {},
          400, "invalid_request_error"),
    Abuse("rebound_host", "/v1/messages", (_MSG % (MODEL, '"hi"')).encode(),
          {"host": "attacker.example:80"}, 421, None),
    Abuse("cross_site_origin", "/v1/messages", (_MSG % (MODEL, '"hi"')).encode(),
          {"origin": "https://attacker.example"}, 403, "permission_error"),
    Abuse("form_post_to_an_admin_endpoint", "/v1/admin/logs-rotate", b"x=1",
          {"content-type": "text/plain"}, 415, None),
]


def run_abuse(case: Abuse, shim: ShimProcess, mock: MockUpstream) -> dict | None:
    mock.reset()
    headers = {"x-api-key": harness_keys.test_keys()["CLIENT_API_KEY"],
               "anthropic-version": ANTHROPIC_VERSION, "content-type": "application/json",
               **case.headers}
    before = len(shim.records())
    r = httpx.post(f"{shim.url}{case.path}", content=case.body, headers=headers, trust_env=False,
                   timeout=30)
    assert r.status_code == case.status, (case.name, r.status_code, r.text[:300])
    if case.status >= 400:
        obj = r.json()
        assert obj["type"] == "error" and obj["error"]["message"], obj
        if case.error:
            assert obj["error"]["type"] == case.error, obj
    else:
        assert r.json()["type"] == "message"
        assert len(mock.wait_for_calls(1)) == 1
    rec = None
    if case.path.startswith("/v1/messages"):  # a model path: exactly one record, found by its rid
        rec = shim.record_for(r.headers["x-ccp-request-id"])
        assert len(shim.records()) == before + 1 and rec["status"] == case.status, rec
    assert httpx.get(f"{shim.url}/healthz", trust_env=False, timeout=5).status_code == 200
    return rec


@pytest.mark.parametrize("case", ABUSE, ids=[c.name for c in ABUSE])
def test_abuse(case, shims, mock_anthropic, mock_zai):
    run_abuse(case, shims.main, mock_anthropic)


def test_abuse_twice_leaves_no_500_no_traceback_and_no_fd(shims, _mock_pair):
    anthropic, _ = _mock_pair
    shim = shims.main
    pid = shim.proc.pid
    start = len(shim.records())
    tb_before = Path(shim.stderr_path).read_text(errors="replace").count("Traceback")
    fds = [fd_count(pid)]
    for _ in range(2):
        for case in ABUSE:
            run_abuse(case, shim, anthropic)
        fds.append(settled_fds(pid, fds[0] + FD_SLACK))
    recs = shim.records()[start:]
    ours_500 = sum(1 for r in recs if r["status"] == 500)
    tracebacks = Path(shim.stderr_path).read_text(errors="replace").count("Traceback") - tb_before
    model_cases = 2 * sum(c.path.startswith("/v1/messages") for c in ABUSE)
    print(f"abuse matrix: {2 * len(ABUSE)} cases, {len(recs)} records ({model_cases} model "
          f"requests), {ours_500} 500s, {tracebacks} tracebacks, fds {fds}")
    assert len(recs) >= model_cases and ours_500 == 0 and tracebacks == 0
    assert fds[2] <= fds[1] + PASS_SLACK, fds
