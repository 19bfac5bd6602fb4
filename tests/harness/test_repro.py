import pytest

from harness.repro import LONG_STREAM_DELTAS, plan

pytestmark = pytest.mark.quick


def test_plan_covers_both_models_both_ops_and_every_client():
    items = plan(3, "claude-haiku-x", "claude-sonnet-y", long_stream=True)
    assert len(items) == 31
    short = items[:-1]
    for lane in ("zai", "anthropic"):
        for kind in ("cli", "curl"):
            assert sum(1 for i in short if i.expect_lane == lane and i.kind == kind) >= 3
        assert sum(1 for i in short if i.expect_lane == lane and not i.stream) == 6
    assert {i.kind for i in short} == {"cli", "curl", "http", "sdk"}
    assert {i.model for i in short if i.kind == "cli"} == {"haiku", "sonnet"}
    assert len({i.token for i in items}) == 31
    assert items[-1].deltas == LONG_STREAM_DELTAS and items[-1].stream


def test_plan_without_long_stream_or_cli():
    items = plan(1, "h", "s", long_stream=False, kinds=("curl", "http"))
    assert all(i.deltas is None for i in items) and {i.kind for i in items} == {"curl", "http"}


def test_quick_plan_is_one_cli_call_per_family():
    from harness.repro import quick_plan
    assert [(i.kind, i.model, i.expect_lane) for i in quick_plan()] == [
        ("cli", "haiku", "zai"), ("cli", "sonnet", "anthropic")]
