import pytest

from harness.sandbox.task import load_task, parse_task
from harness.shim import PROJECT_ROOT

pytestmark = pytest.mark.quick


def test_the_demo_task_loads():
    task = load_task(PROJECT_ROOT / "tasks" / "claude_proxy_demo.yaml")
    assert task.name == "claude_proxy_demo" and task.model == "glm-4.6"
    assert task.expect == "A2S_OK_20260211" and task.artifact == "/tmp/claude_result.txt"
    assert any(c.startswith("claude -p") for c in task.commands)


@pytest.mark.parametrize("data, key", [({"model": "m", "artifact": "a", "expect": "e", "commands": ["x"]}, "name"),
                                       ({"name": "n", "model": "m", "artifact": "a", "expect": "e"}, "commands"),
                                       ({"name": "n", "model": "m", "artifact": "a", "expect": "e",
                                         "commands": ["x"], "timeouts": {"create": -1}}, "timeouts.create")])
def test_bad_tasks_name_the_key(data, key):
    with pytest.raises(ValueError, match=key):
        parse_task(data, "t.yaml")
