"""One scenario table, two front doors: `ccp serve` (ANTHROPIC_BASE_URL) and `ccp mitm` (HTTPS_PROXY).

Every row runs through both fronts against the same TLS mock upstreams and must give the same lane,
decision, status, error class, record shape, upstream hygiene and what the client saw — so a
difference between the two paths is a failing test here. Both fronts are one pipeline (the mitm
addon hands model flows to it), so the rows include what only the shim did before: conversion to an
OpenAI-protocol route, backoff, the fallback lane, and a session's trajectory pair.
"""
from __future__ import annotations

import json
from typing import NamedTuple

import httpx
import pytest

from harness.gates import no_secret_in_files, trajectory_pairs
from harness.keys import test_keys as fake_keys
from harness.probes import httpx_client, message_body
from harness.shim import FRONTS

pytestmark = [pytest.mark.repro_mitm, pytest.mark.repro_py]

HAIKU, SONNET = "claude-haiku-4-5-20251001", "claude-sonnet-4-5-20250929"
OVERRIDE = "claude-opus-4-1-20250805"


class Row(NamedTuple):
    name: str
    model: str
    stream: bool
    lane: str
    decision: str
    status: int = 200
    err_type: str | None = None
    env: dict = {}
    fault: str | None = None  # x-mock-fault for the upstream
    body: bytes | None = None  # a raw body instead of a well-formed request
    header_mode: str = "x-api-key"
    client_end: dict = {}  # front -> how the client's answer ends, where the fronts differ


ROWS = [
    Row("haiku_json", HAIKU, False, "zai", "to_zai"),
    Row("haiku_sse", HAIKU, True, "zai", "to_zai"),
    Row("sonnet_json", SONNET, False, "anthropic", "to_anth"),
    Row("sonnet_sse", SONNET, True, "anthropic", "to_anth"),
    Row("paused", HAIKU, True, "anthropic", "offload_paused", env={"OFFLOAD_PAUSED": "1"}),
    Row("not_forced", HAIKU, False, "anthropic", "to_anth", env={"FORCE_HAIKU_TO_ZAI": "0"}),
    Row("bearer_mode", HAIKU, True, "zai", "to_zai", env={"ZAI_HEADER_MODE": "authorization"},
        header_mode="authorization"),
    Row("override", SONNET, False, "anthropic", "manual_override", env={"CCP_MODEL": OVERRIDE}),
    Row("upstream_529", SONNET, False, "anthropic", "to_anth", 529, "upstream_5xx",
        fault="status=529"),
    Row("upstream_429_sse", HAIKU, True, "zai", "to_zai", 429, "upstream_4xx", fault="status=429"),
    Row("reset_mid_stream", SONNET, True, "anthropic", "to_anth", 200, "net",
        fault="reset_mid_stream;after=3", client_end={"shim": "error_event", "mitm": "error_event"}),
    Row("bad_json", SONNET, False, None, None, 400, "bad_request", body=b'{"model": "claude-'),
    Row("no_model", SONNET, False, None, None, 400, "bad_request", body=b'{"messages": []}'),
]


def _send(front, row: Row, keys: dict) -> tuple[httpx.Response | None, bytes, str | None]:
    """(response, raw bytes as received, transport error) for one row through one front."""
    headers = {"content-type": "application/json", "anthropic-version": "2023-06-01",
               "x-api-key": keys["CLIENT_API_KEY"]}
    if row.fault:
        headers["x-mock-fault"] = row.fault
    body = row.body if row.body is not None else json.dumps(
        message_body(row.model, f"row {row.name}", row.stream)).encode()
    chunks: list[bytes] = []
    with httpx_client(30.0, front.via) as client:
        try:
            with client.stream("POST", f"{front.base_url}/v1/messages?beta=true", headers=headers,
                               content=body) as resp:
                for chunk in resp.iter_raw():
                    chunks.append(chunk)
                return resp, b"".join(chunks), None
        except httpx.HTTPError as exc:
            return None, b"".join(chunks), type(exc).__name__


def _fronts_for(row: Row):
    return [pytest.param(front, row, id=f"{front}-{row.name}") for front in FRONTS]


@pytest.mark.parametrize("front_name, row", [p for row in ROWS for p in _fronts_for(row)])
def test_row(make_front, tls_mocks, keys, front_name, row):
    anthropic, zai = tls_mocks
    front = make_front(front_name, row.env)
    resp, raw, transport_error = _send(front, row, keys)
    [rec] = front.proc.wait_for_records(1)

    # the record: the same on both fronts
    assert (rec["lane"], rec["decision"], rec["status"], rec["err_type"]) == \
        (row.lane, row.decision, row.status, row.err_type), rec
    assert rec["op"] == ("stream" if row.stream else "nonstream") or row.body is not None
    assert rec["bytes_in"] > 0 and rec["latency_ms"] is not None
    assert ("header_mode" in rec) == (row.lane == "zai"), rec
    if row.lane == "zai":
        assert rec["header_mode"] == row.header_mode

    # what the client saw
    end = row.client_end.get(front_name, "normal")
    if end == "cut":
        assert resp is None or b"message_stop" not in raw
    else:
        assert transport_error is None, transport_error
        assert resp.status_code == row.status
        assert resp.headers["x-ccp-request-id"] == rec["rid"]
    if row.body is not None:  # the shim's own answer, in the Anthropic error shape
        error = json.loads(raw)
        assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
        assert not anthropic.calls and not zai.calls
        return

    # what the upstream got: one call, on the row's lane, with that lane's credentials only
    upstream, other = (zai, anthropic) if row.lane == "zai" else (anthropic, zai)
    assert len(upstream.calls) == 1 and not other.calls
    call = upstream.calls[0]
    sent_body = json.loads(call.body)
    assert sent_body["model"] == (OVERRIDE if row.decision == "manual_override" else row.model)
    if row.lane == "zai":
        key = keys["ZAI_API_KEY"]
        if row.header_mode == "authorization":
            assert call.headers.get("authorization") == f"Bearer {key}" and "x-api-key" not in call.headers
        else:
            assert call.headers.get("x-api-key") == key and "authorization" not in call.headers
    else:
        assert call.headers.get("x-api-key") == keys["CLIENT_API_KEY"]
        assert keys["ZAI_API_KEY"] not in json.dumps(call.headers)

    if row.stream and row.status == 200 and end == "normal" and not row.err_type:
        assert raw == call.sent, "the stream must reach the client byte for byte"
        assert rec["sse"]["complete"] is True and rec["sse"]["bytes"] == len(raw)
        assert rec["ttfb_ms"] is not None and rec["out_tokens"] is not None
    if row.err_type == "net":  # a broken stream: accounted, and what was relayed is kept
        assert rec["sse"]["complete"] is False and rec["partial"]
        if end == "error_event":
            assert raw.startswith(call.sent) and b"event: error" in raw[len(call.sent):]
        else:
            assert call.sent.startswith(raw) or raw == b""


GLM_KEY = "glm-same-table-key-5c1e"


def _glm_providers(tmp_path, zai) -> str:
    providers = tmp_path / "providers.yaml"
    providers.write_text(f"""
providers:
  glm:
    protocol: openai
    base_url: {zai.base_url}/api/paas/v4
    key_env: GLM_API_KEY
    routes:
      - name: glm-4.6
        model: glm-4.6-chat
""")
    return str(providers)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize("front_name", FRONTS)
def test_an_openai_route_is_converted(make_front, tls_mocks, keys, tmp_path, front_name, stream):
    """An Anthropic client, an OpenAI-protocol provider: converted there and back, on both fronts."""
    anthropic, zai = tls_mocks
    front = make_front(front_name, {"CCP_PROVIDERS_FILE": _glm_providers(tmp_path, zai),
                                    "GLM_API_KEY": GLM_KEY})
    resp, raw, error = _send(front, Row("glm", "glm-4.6", stream, "glm", "route"), keys)
    assert error is None and resp.status_code == 200, raw[:300]
    [rec] = front.proc.wait_for_records(1)
    assert (rec["lane"], rec["decision"], rec["protocol_out"], rec["status"], rec["err_type"]) == \
        ("glm", "route", "openai", 200, None)
    [call] = zai.calls
    assert call.path.endswith("/api/paas/v4/chat/completions")
    assert json.loads(call.body)["model"] == "glm-4.6-chat"
    assert call.headers.get("authorization") == f"Bearer {GLM_KEY}"
    assert keys["CLIENT_API_KEY"] not in json.dumps(call.headers) and not anthropic.calls
    if stream:
        assert b"event: message_start" in raw and b"event: message_stop" in raw
        assert rec["sse"]["complete"] is True
    else:
        message = json.loads(raw)
        assert message["type"] == "message" and message["content"][0]["type"] == "text"
    assert rec["out_tokens"] is not None


@pytest.mark.parametrize("front_name", FRONTS)
def test_backoff_retries_a_429_on_both_fronts(make_front, tls_mocks, keys, front_name):
    anthropic, _ = tls_mocks
    front = make_front(front_name, {"MITM_ENABLE_BACKOFF": "1"})  # (the mitm router's own name)
    anthropic.script("status=429", times=1)  # one refusal (retry-after: 1), then the answer
    resp, raw, error = _send(front, Row("backoff", SONNET, False, "anthropic", "to_anth"), keys)
    assert error is None and resp.status_code == 200, raw[:300]
    [rec] = front.proc.wait_for_records(1)
    assert (rec["status"], rec["retries"], rec["err_type"]) == (200, 1, None)
    assert len(anthropic.calls) == 2


@pytest.mark.parametrize("front_name", FRONTS)
def test_the_fallback_lane_serves_a_dead_zai_lane_on_both_fronts(make_front, tls_mocks, keys,
                                                                   front_name):
    import socket
    anthropic, zai = tls_mocks
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    front = make_front(front_name, {"CCP_ZAI_BASE_URL": f"https://127.0.0.1:{dead}/api/anthropic",
                                    "CCP_FALLBACK_LANE": "anthropic"})
    resp, raw, error = _send(front, Row("fallback", HAIKU, False, "zai", "to_zai"), keys)
    assert error is None and resp.status_code == 200, raw[:300]
    [rec] = front.proc.wait_for_records(1)
    assert (rec["lane"], rec["decision"], rec["reason"]) == ("anthropic", "fallback", "fallback:net")
    assert len(anthropic.calls) == 1 and not zai.calls
    assert resp.headers["x-ccp-lane"] == "anthropic"


@pytest.mark.parametrize("front_name", FRONTS)
def test_a_session_writes_its_trajectory_on_both_fronts(make_front, tls_mocks, keys, front_name):
    """A sandbox session registered on the front's admin endpoint: its request leaves a query and
    an answer file, secrets masked."""
    front = make_front(front_name)
    admin = front.proc.admin_url if front_name == "mitm" else front.proc.url
    token = "sk-ant-session-token-for-same-table"
    created = httpx.post(f"{admin}/v1/sessions", json={"session_token": token,
                                                       "sandbox_id": "sb-1", "task_name": "row"},
                         timeout=10, trust_env=False)
    assert created.status_code == 201, created.text
    session_id = created.json()["session"]
    headers = {"content-type": "application/json", "anthropic-version": "2023-06-01",
               "x-api-key": token}
    with httpx_client(30.0, front.via) as client:
        resp = client.post(f"{front.base_url}/v1/messages", headers=headers,
                           content=json.dumps(message_body(SONNET, "trajectory", False)).encode())
    assert resp.status_code == 200
    [rec] = front.proc.wait_for_records(1)
    assert rec["session"] == session_id
    folder = front.proc.logs_dir / "trajectory" / session_id
    [query] = (folder / "query").iterdir()
    assert (folder / "answer" / query.name).is_file()  # the pair: the query and its answer
    assert trajectory_pairs(front.proc.logs_dir).ok
    assert no_secret_in_files(folder.rglob("*.json"), [token, keys["CLIENT_API_KEY"]]).ok


@pytest.mark.parametrize("front_name", FRONTS)
def test_dead_upstream(make_front, tls_mocks, keys, front_name):
    """The anthropic lane points at a closed port: 502 to the client, one `net` record."""
    import socket
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    front = make_front(front_name, {"CCP_ANTHROPIC_BASE_URL": f"https://127.0.0.1:{dead}"})
    resp, raw, error = _send(front, Row("dead", SONNET, False, "anthropic", "to_anth"), keys)
    assert error is None and resp.status_code == 502
    [rec] = front.proc.wait_for_records(1)
    assert (rec["lane"], rec["status"], rec["err_type"]) == ("anthropic", 502, "net")
    assert json.loads(raw)["error"]["type"] == "api_error"  # the shim's own answer, both fronts


def test_keys_are_distinct():
    """The hygiene assertions above are only meaningful if the fake credentials differ."""
    keys = fake_keys()
    assert len({keys["ZAI_API_KEY"], keys["CLIENT_API_KEY"], keys["ANTHROPIC_AUTH_TOKEN"]}) == 3
