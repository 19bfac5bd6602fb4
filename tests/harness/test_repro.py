import pytest

from harness.repro import LONG_STREAM_DELTAS, plan

pytestmark = pytest.mark.quick


def test_plan_covers_both_models_both_ops_and_both_clients():
    items = plan(3, "claude-haiku-x", "claude-sonnet-y", long_stream=True)
    assert len(items) == 13
    short = items[:-1]
    for lane in ("zai", "anthropic"):
        for stream in (False, True):
            assert sum(1 for i in short if i.expect_lane == lane and i.stream == stream) == 3
    assert {i.kind for i in short} == {"http", "sdk"}
    assert len({i.token for i in items}) == 13
    assert items[-1].deltas == LONG_STREAM_DELTAS and items[-1].stream


def test_plan_without_long_stream():
    assert all(i.deltas is None for i in plan(1, "h", "s", long_stream=False))
