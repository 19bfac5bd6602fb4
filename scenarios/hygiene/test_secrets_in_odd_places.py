"""Secrets in odd places: a client credential, a session token or the admin token a client puts
in a logged field (the model, the path, the session header, a role that ends up in an error) is
masked in every sink: usage.jsonl, the SQLite store, `GET /v1/usage/samples`, the shim's stderr,
the body tee and the trajectory files. And a session token after `Bearer` and tabs or several
spaces is the session, never forwarded upstream."""
import json
import sqlite3

import httpx
import pytest

pytestmark = [pytest.mark.hygiene]

ADMIN = "admin-token-odd-places-41c7"
SESSION = "sess-token-odd-places-9d2e"
CLIENT_KEY = "client-key-odd-places-6b0f"
GLM_KEY = "glm-key-odd-places-2a95"
SECRETS = (ADMIN, SESSION, CLIENT_KEY, GLM_KEY)
ROUTE = """
providers:
  glm:
    protocol: openai
    base_url: {base}/api/paas/v4
    key_env: GLM_API_KEY
    routes:
      - name: "glm-*"
"""


def _body(model: str, role: str = "user") -> dict:
    return {"model": model, "max_tokens": 5, "messages": [{"role": role, "content": "hi"}]}


def test_secrets_in_logged_fields_are_masked_in_every_sink(make_shim, mock_anthropic, mock_zai,
                                                           tmp_path):
    providers = tmp_path / "providers.yaml"
    providers.write_text(ROUTE.format(base=mock_zai.base_url))
    shim = make_shim({"CCP_PROVIDERS_FILE": str(providers), "GLM_API_KEY": GLM_KEY,
                      "CCP_ADMIN_TOKEN": ADMIN, "ENABLE_BODY_TEE": "1"})
    client = httpx.Client(base_url=shim.url, trust_env=False, timeout=30)
    session = client.post("/v1/sessions", headers={"authorization": f"Bearer\t{ADMIN}"}, json={
        "session_token": SESSION, "sandbox_id": "sbx-odd", "task_name": "odd"}).json()["session"]
    sent = [  # (path, headers, body)
        ("/v1/messages", {"authorization": f"Bearer\t{SESSION}"}, _body(f"claude-sonnet-4-5-{SESSION}")),
        ("/v1/messages", {"authorization": f"Bearer    {SESSION}",
                          "x-claude-code-session-id": SESSION}, _body("claude-haiku-4-5")),
        ("/v1/messages", {"x-api-key": CLIENT_KEY}, _body(f"{ADMIN}")),
        ("/v1/messages", {"x-api-key": CLIENT_KEY,
                          "x-claude-code-session-id": f"s-{CLIENT_KEY}"}, _body(f"claude-x-{CLIENT_KEY}")),
        ("/v1/messages", {"x-api-key": CLIENT_KEY}, _body("glm-4.6", role=f"r-{CLIENT_KEY}")),
        ("/v1/messages", {"x-api-key": SESSION}, _body("glm-4.6", role=f"r-{ADMIN}-{GLM_KEY}")),
        ("/v1/chat/completions", {"authorization": f"bearer \t {SESSION}"},
         _body(f"glm-4.6-{GLM_KEY}")),
        (f"/v1/messages/{ADMIN}", {"x-api-key": CLIENT_KEY}, _body("claude-sonnet-4-5")),
    ]
    answers = [client.post(path, headers=headers, json=body) for path, headers, body in sent]
    assert [a.status_code for a in answers] == [200, 200, 200, 200, 400, 400, 200, 404], \
        [a.text[:200] for a in answers]
    assert "r-[REDACTED" not in answers[4].text  # (the client is told what it sent itself)
    samples = client.get("/v1/usage/samples", params={"limit": 100},
                         headers={"x-ccp-admin-token": ADMIN})
    assert samples.status_code == 200 and samples.json()["count"] == len(sent)
    client.close()
    shim.stop()

    records = shim.records()
    assert len(records) == len(sent)
    by_rid = {r["rid"]: r for r in records}
    sessions = [by_rid[a.headers["x-ccp-request-id"]]["session"] for a in answers]
    # a session token after Bearer and tabs / spaces / both is the session
    assert sessions == [session, session, None, None, None, session, session, None]
    assert by_rid[answers[0].headers["x-ccp-request-id"]]["model"] == \
        f"claude-sonnet-4-5-[REDACTED…{SESSION[-4:]}]"
    assert by_rid[answers[7].headers["x-ccp-request-id"]]["path"] == \
        f"/v1/messages/[REDACTED…{ADMIN[-4:]}]"
    # the upstreams never got a session token as a credential (whatever whitespace came after
    # Bearer); the lane's own key instead
    for call in mock_anthropic.calls + mock_zai.calls:
        credentials = [call.headers.get(h, "") for h in ("authorization", "x-api-key")]
        assert not [c for c in credentials if SESSION in c], call.headers
    sinks = {
        "usage.jsonl": shim.usage_path.read_text(),
        "samples API": samples.text,
        "stderr": shim.stderr_path.read_text(),
        "store": "\n".join(json.dumps(list(row)) for row in sqlite3.connect(
            shim.logs_dir / "ccp.sqlite3").execute("SELECT * FROM samples")),
    }
    for path in shim.logs_dir.rglob("*.json"):
        sinks[str(path.relative_to(shim.logs_dir))] = path.read_text()
    assert any(name.startswith("tee/") for name in sinks)
    assert any(name.startswith("trajectory/") for name in sinks)
    assert "[REDACTED" in sinks["stderr"]  # the 400s' log lines named the role
    leaks = {name: [s for s in SECRETS if s in text] for name, text in sinks.items()}
    assert not {name: found for name, found in leaks.items() if found}
