"""A session routed to an OpenAI provider: the query holds the converted upstream request, the answer
both the upstream (OpenAI) and the downstream (Anthropic) bodies."""
import json

import httpx
import pytest

pytestmark = [pytest.mark.sandbox]

TOKEN = "sess-token-glm-0b7e11d4"


@pytest.mark.parametrize("stream", [False, True], ids=["nonstream", "stream"])
def test_trajectory_of_a_converted_exchange(glm_shim, mock_zai, stream):
    session = httpx.post(f"{glm_shim.url}/v1/sessions", trust_env=False, json={
        "session_token": TOKEN, "sandbox_id": "sbx-9", "task_name": "glm_task"}).json()["session"]
    r = httpx.post(f"{glm_shim.url}/v1/messages", trust_env=False, timeout=30, headers={"x-api-key": TOKEN},
                   json={"model": "glm-4.6", "max_tokens": 32, "stream": stream,
                         "messages": [{"role": "user", "content": "Reply with exactly: TRJ and nothing else."}]})
    assert r.status_code == 200
    glm_shim.record_for(r.headers["x-ccp-request-id"])  # written after the answer file, in `finally`
    folder = glm_shim.logs_dir / "trajectory" / session
    [query] = (folder / "query").glob("*.json")
    [answer] = (folder / "answer").glob("*.json")
    assert query.name == answer.name
    q, a = json.loads(query.read_text()), json.loads(answer.read_text())
    assert q["request"]["model"] == "glm-4.6-chat" and q["protocol_out"] == "openai"
    assert q["request"] == mock_zai.calls[0].json  # exactly what the provider received
    if stream:
        assert "data: [DONE]" in a["upstream_response"]["events"]
        assert a["downstream_response"]["message"]["content"][0]["text"] == "TRJ"
        assert "event: message_stop" in a["downstream_response"]["events"]
    else:
        assert a["upstream_response"]["object"] == "chat.completion"
        assert a["downstream_response"]["content"][0]["text"] == "TRJ"
    assert TOKEN not in query.read_text() + answer.read_text()
