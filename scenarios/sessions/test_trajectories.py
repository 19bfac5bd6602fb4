"""Sandbox sessions: a registered token is attributed, never forwarded, and leaves query/answer pairs."""
import asyncio
import json

import httpx
import pytest

from harness.cli_probe import cli_probe
from harness.gates import no_secret_in_files, trajectory_pairs
from harness.probes import http_probe

pytestmark = [pytest.mark.sandbox, pytest.mark.repro_go]

ADMIN = "admin-token-for-tests-0001"
SESSION_TOKEN = "sess-token-a2s-demo-7c1e55"


def _register(shim, token=SESSION_TOKEN, admin=ADMIN):
    return httpx.post(f"{shim.url}/v1/sessions", trust_env=False,
                      headers={"authorization": f"Bearer {admin}"} if admin else {},
                      json={"session_token": token, "sandbox_id": "sbx-001", "task_name": "claude_proxy_demo"})


def _all_secrets(keys):
    return [*keys.values(), SESSION_TOKEN, ADMIN]


def test_session_requests_leave_redacted_pairs(make_shim, mock_anthropic, mock_zai, keys):
    shim = make_shim({"CCP_ADMIN_TOKEN": ADMIN})
    assert _register(shim, admin=None).status_code == 401
    reg = _register(shim)
    assert reg.status_code == 201, reg.text
    session = reg.json()["session"]
    assert SESSION_TOKEN not in reg.text
    listed = httpx.get(f"{shim.url}/v1/sessions", headers={"x-ccp-admin-token": ADMIN}, trust_env=False)
    assert [s["session"] for s in listed.json()["sessions"]] == [session]

    body = {"model": "claude-sonnet-4-5", "max_tokens": 20, "system": "You are a sandboxed agent.",
            "tools": [{"name": "bash", "description": "run", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "auto"},
            "messages": [{"role": "user", "content": f"Reply with exactly: A2S_OK and nothing else. {SESSION_TOKEN}"}]}
    results = [http_probe(shim.url, "claude-sonnet-4-5", stream=stream, auth_token=SESSION_TOKEN,
                          body={**body, "stream": stream}) for stream in (False, True)]
    results.append(http_probe(shim.url, "claude-haiku-4-5", stream=True, api_key=SESSION_TOKEN,
                              body={**body, "model": "claude-haiku-4-5", "stream": True}))
    assert all(r.ok and r.text == "A2S_OK" for r in results), [r.row() for r in results]
    recs = shim.wait_for_records(3)
    assert {r["session"] for r in recs} == {session}
    # the session token is the sandbox's only credential: accepted, never forwarded
    for call in mock_anthropic.calls:
        assert call.headers["authorization"] == f"Bearer {keys['ANTHROPIC_AUTH_TOKEN']}"
    assert mock_zai.calls[0].headers["x-api-key"] == keys["ZAI_API_KEY"]
    assert SESSION_TOKEN not in json.dumps([c.headers for c in mock_anthropic.calls + mock_zai.calls])

    folder = shim.logs_dir / "trajectory" / session
    queries = sorted((folder / "query").glob("*.json"))
    answers = sorted((folder / "answer").glob("*.json"))
    assert [q.name for q in queries] == [a.name for a in answers] and len(queries) == 3
    assert trajectory_pairs(shim.logs_dir).ok
    q0 = json.loads(queries[0].read_text())
    assert q0["request"]["system"] == body["system"] and q0["request"]["tools"] == body["tools"]
    assert q0["request"]["tool_choice"] == {"type": "auto"} and q0["route"] == "anthropic"
    assert q0["sandbox_id"] == "sbx-001" and q0["task_name"] == "claude_proxy_demo"
    a0, a1 = (json.loads(a.read_text()) for a in answers[:2])
    assert a0["upstream_response"]["content"][0]["text"] == "A2S_OK"
    assert a0["downstream_response"] == a0["upstream_response"]
    assert a1["upstream_response"]["message"]["content"][0]["text"] == "A2S_OK"
    assert "event: message_stop" in a1["upstream_response"]["events"]
    gate = no_secret_in_files([*queries, *answers, shim.usage_path], _all_secrets(keys))
    assert gate.ok, gate.detail
    assert "[REDACTED" in queries[0].read_text()  # the token the prompt carried was masked

    ended = httpx.delete(f"{shim.url}/v1/sessions/{session}", headers={"x-ccp-admin-token": ADMIN},
                         trust_env=False)
    assert ended.status_code == 200 and ended.json()["ended"] is True


def test_concurrent_session_requests_get_unique_pairs(make_shim, mock_anthropic, mock_zai):
    shim = make_shim()
    session = _register(shim, admin=None).json()["session"]

    async def main():
        async with httpx.AsyncClient(trust_env=False, timeout=30) as client:
            async def one(i):
                r = await client.post(f"{shim.url}/v1/messages", headers={"x-api-key": SESSION_TOKEN},
                                      json={"model": "claude-haiku-4-5", "max_tokens": 5, "stream": i % 2 == 0,
                                            "messages": [{"role": "user", "content": f"n{i}"}]})
                assert r.status_code == 200
            await asyncio.gather(*(one(i) for i in range(20)))

    asyncio.run(main())
    shim.wait_for_records(20)
    folder = shim.logs_dir / "trajectory" / session
    assert len(list((folder / "query").glob("*.json"))) == 20
    assert trajectory_pairs(shim.logs_dir).ok


def test_require_session_rejects_unknown_tokens(make_shim, mock_anthropic, mock_zai):
    shim = make_shim({"CCP_REQUIRE_SESSION": "1"})
    res = http_probe(shim.url, "claude-sonnet-4-5", api_key="not-a-session-token")
    assert res.status == 401
    assert json.loads(res.raw)["error"]["type"] == "authentication_error"
    rec = shim.record_for(res.rid)
    assert (rec["status"], rec["err_type"]) == (401, "bad_request")
    assert mock_anthropic.calls == []
    _register(shim, admin=None)
    assert http_probe(shim.url, "claude-sonnet-4-5", api_key=SESSION_TOKEN).ok


def test_real_cli_with_a_session_token(make_shim, mock_anthropic, mock_zai, claude_bin):
    shim = make_shim()
    session = _register(shim, admin=None).json()["session"]
    res = cli_probe(shim.url, "haiku", "Reply with exactly: A2S_OK_20260211 and nothing else.",
                    auth_token=SESSION_TOKEN, binary=claude_bin)
    assert res.ok and res.text == "A2S_OK_20260211", res.row()
    shim.wait_for_records(1)  # the record is written after the answer file
    [query] = (shim.logs_dir / "trajectory" / session / "query").glob("*.json")
    request = json.loads(query.read_text())["request"]
    assert {"messages", "system", "tools"} <= request.keys()
    assert trajectory_pairs(shim.logs_dir).ok
