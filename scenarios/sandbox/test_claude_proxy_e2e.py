"""TC_CLAUDE_PROXY_E2E_SMOKE on the local runtime: the real `claude` CLI inside the sandbox, the shim
as its only way to a model, the trajectory as the judge."""
import dataclasses
import json
from pathlib import Path

import pytest

pytestmark = [pytest.mark.sandbox]


def test_smoke_task_passes(run_sandbox, task):
    result = run_sandbox(task)
    assert result.failure_class == "ok", (result.error, result.commands)
    assert "A2S_OK_20260211" in result.artifact_text
    assert result.checks["model_matches_route"] and result.checks["trajectory_pairs"]
    assert result.checks["full_request"]
    assert set(result.steps) >= {"start_shim", "load_routes", "create_sandbox", "register_session",
                                 "run_commands", "read_artifact", "check_trajectory", "cleanup"}
    saved = json.loads(Path(result.result_path).read_text())
    assert saved["class"] == "ok" and saved["trajectory"] == result.trajectory
    # the sandbox's only credential was its session token: the provider got the route's own key
    [call] = [c for c in run_sandbox.mock.calls if c.protocol == "openai"]
    assert call.headers["authorization"] == "Bearer glm-test-key-3f9d2a61"
    assert call.json["model"] == "glm-4.6"
    query = json.loads(Path(next(p for p in result.trajectory if "/query/" in p)).read_text())
    assert {"messages", "tools"} <= query["request"].keys() and query["task_name"] == task.name
    answer = json.loads(Path(next(p for p in result.trajectory if "/answer/" in p)).read_text())
    texts = [b.get("text") for b in answer["downstream_response"]["message"]["content"] if b["type"] == "text"]
    assert texts == ["A2S_OK_20260211"]


def test_stream_false_also_works_inside_the_sandbox(run_sandbox, task):
    """curl in the sandbox, non-stream, with the same session token, next to the CLI's stream."""
    curl = ("curl -s -o /tmp/curl.json $ANTHROPIC_BASE_URL/v1/messages -H 'content-type: application/json' "
            "-H \"authorization: Bearer $ANTHROPIC_AUTH_TOKEN\" -d '{\"model\": \"glm-4.6\", \"max_tokens\": 50, "
            "\"stream\": false, \"tools\": [], \"messages\": [{\"role\": \"user\", \"content\": "
            "\"Reply with exactly: A2S_OK_20260211 and nothing else.\"}]}'")
    both = dataclasses.replace(task, commands=(*task.commands, curl, "cat /tmp/curl.json >> /tmp/claude_result.txt"))
    result = run_sandbox(both)
    assert result.failure_class == "ok", (result.error, result.commands)
    assert sorted(result.checks["streams"]) == ["nonstream", "stream"]
    assert result.artifact_text.count("A2S_OK_20260211") == 2
