import pytest

from proxy.routing import (LANE_ANTHROPIC, LANE_ZAI, RequestMeta, RoutingPolicy, decide, is_haiku,
                           model_family)

pytestmark = pytest.mark.quick


@pytest.mark.parametrize("model, family", [
    ("claude-haiku-4-5-20251001", "haiku"),
    ("claude-haiku-5-5", "haiku"),
    ("claude-3-5-haiku-latest", "haiku"),
    ("CLAUDE-HAIKU-9", "haiku"),
    ("claude-sonnet-4-5-20250929", "sonnet"),
    ("claude-opus-4-1", "opus"),
    ("glm-4.6", None),
    ("haikus-are-poems", None),
    ("", None),
])
def test_model_family_by_pattern(model, family):
    assert model_family(model) == family


def test_haiku_goes_to_zai_by_default():
    d = decide(RequestMeta("claude-haiku-5-5"), RoutingPolicy())
    assert (d.lane, d.provider, d.reason, d.upstream_model) == (LANE_ZAI, LANE_ZAI, "to_zai",
                                                                "claude-haiku-5-5")


@pytest.mark.parametrize("model", ["claude-sonnet-4-5", "claude-opus-4-1", "gpt-4o"])
def test_everything_else_goes_to_anthropic(model):
    d = decide(RequestMeta(model), RoutingPolicy())
    assert (d.lane, d.reason) == (LANE_ANTHROPIC, "to_anth")


def test_offload_paused_wins_over_haiku():
    d = decide(RequestMeta("claude-haiku-4-5"), RoutingPolicy(offload_paused=True))
    assert (d.lane, d.reason) == (LANE_ANTHROPIC, "offload_paused")


def test_force_haiku_off_keeps_haiku_on_anthropic():
    d = decide(RequestMeta("claude-haiku-4-5"), RoutingPolicy(force_haiku_to_zai=False))
    assert (d.lane, d.reason) == (LANE_ANTHROPIC, "to_anth")
    assert is_haiku("claude-haiku-4-5")
