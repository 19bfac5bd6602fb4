import json

import pytest

from harness.bench import matrix

pytestmark = pytest.mark.quick


def test_request_body_is_claude_code_sized_json():
    body = matrix.request_body("claude-sonnet-4-5", True, size_kb=64)
    payload = json.loads(body)
    assert 60 * 1024 <= len(body) <= 72 * 1024
    assert payload["model"] == "claude-sonnet-4-5" and payload["stream"] is True
    assert payload["messages"][-1]["role"] == "user"
    # the claude CLI's shape: a dozen tools with schemas, tool_use/tool_result turns, some non-ASCII
    assert len(payload["tools"]) == 12 and all(t["input_schema"]["properties"] for t in payload["tools"])
    kinds = {block["type"] for m in payload["messages"] if isinstance(m["content"], list)
             for block in m["content"]}
    assert {"text", "tool_use", "tool_result"} <= kinds and not body.isascii()


def test_scenarios_cover_the_issue():
    names = {s.name: s for s in matrix.scenarios()}
    assert names["nonstream_c1"].concurrency == 1 and names["nonstream_c32"].concurrency == 32
    assert names["stream50_c32"].deltas == 50 and names["convert_c32"].convert
    hold = names[f"hold_{matrix.HOLD_STREAMS}"]
    assert hold.concurrency >= 1000 and hold.total == hold.concurrency
    assert hold.deltas * hold.delay_ms >= 1000  # each held stream lasts about a second
    assert all(s.cap for s in matrix.scenarios(quick=True))
