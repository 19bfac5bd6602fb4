import pytest

from proxy.config.catalog import Catalog, Provider, Route
from proxy.core.redact import Secret
from proxy.core.routing import (
    LANE_ANTHROPIC,
    LANE_ZAI,
    Decision,
    RequestMeta,
    RoutingPolicy,
    decide,
    is_haiku,
    model_family,
)

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


# Rows 2 and 3: the manual override and the catalog routes.
def _catalog() -> Catalog:
    def provider(name, protocol="anthropic"):
        return Provider(name, protocol, f"https://{name}.test", Secret("k"), "K", "x-api-key", "f.yaml")
    return Catalog({"anthropic": provider("anthropic"), "zai": provider("zai"),
                    "glm": provider("glm", "openai"), "alt": provider("alt")},
                   (Route("glm-*", "glm", None, "f.yaml"),
                    Route("my-sonnet-alias", "alt", "claude-sonnet-4-5", "f.yaml"),
                    Route("glm-4.6", "glm", "glm-4.6-chat", "f.yaml"),
                    Route("claude-haiku-*", "alt", None, "f.yaml")))


def test_row3_a_catalog_route_picks_its_provider_and_upstream_model():
    d = decide(RequestMeta("my-sonnet-alias"), RoutingPolicy(), _catalog())
    assert d == ("alt", "alt", "claude-sonnet-4-5", "route", "anthropic")
    d = decide(RequestMeta("glm-4.6"), RoutingPolicy(), _catalog())  # exact before the glob
    assert (d.lane, d.upstream_model, d.reason, d.protocol) == ("glm", "glm-4.6-chat", "route", "openai")
    d = decide(RequestMeta("GLM-5"), RoutingPolicy(), _catalog())  # no model: the name asked
    assert (d.lane, d.upstream_model) == ("glm", "GLM-5")


def test_row3_beats_the_haiku_rule_and_unrouted_models_fall_through():
    assert decide(RequestMeta("claude-haiku-4-5"), RoutingPolicy(), _catalog()).lane == "alt"
    d = decide(RequestMeta("claude-3-5-haiku-latest"), RoutingPolicy(), _catalog())
    assert (d.lane, d.reason) == (LANE_ZAI, "to_zai")
    assert decide(RequestMeta("claude-opus-4-1"), RoutingPolicy(), _catalog()).reason == "to_anth"


def test_row2_override_naming_a_route_beats_the_request_model():
    d = decide(RequestMeta("glm-4.6"), RoutingPolicy(), _catalog(), override="my-sonnet-alias")
    assert d == ("alt", "alt", "claude-sonnet-4-5", "manual_override", "anthropic")


def test_row2_override_with_a_plain_model_id_goes_to_anthropic():
    d = decide(RequestMeta("claude-haiku-4-5"), RoutingPolicy(), _catalog(), override="claude-opus-4-1")
    assert d == (LANE_ANTHROPIC, LANE_ANTHROPIC, "claude-opus-4-1", "manual_override", "anthropic")
    d = decide(RequestMeta("claude-haiku-4-5"), RoutingPolicy(), None, "claude-opus-4-1")
    assert (d.lane, d.reason) == (LANE_ANTHROPIC, "manual_override")


def test_row1_offload_paused_beats_the_override_and_the_routes():
    for override in ("my-sonnet-alias", None):
        d = decide(RequestMeta("glm-4.6"), RoutingPolicy(offload_paused=True), _catalog(), override)
        assert d == (LANE_ANTHROPIC, LANE_ANTHROPIC, "glm-4.6", "offload_paused", "anthropic")


def test_old_four_field_decisions_still_build():
    assert Decision("zai", "zai", "m", "to_zai").protocol == "anthropic"


def test_routing_stays_pure():
    import ast
    from pathlib import Path

    import proxy.core.routing as routing
    tree = ast.parse(Path(routing.__file__).read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, (ast.Import, ast.ImportFrom))
                for alias in (node.names if isinstance(node, ast.Import) else [ast.alias(node.module or "")])}
    assert not imported & {"os", "aiohttp"}


# Row 4a: licence enforcement.
@pytest.mark.parametrize("enforced, allows, lane, reason", [
    (False, False, LANE_ZAI, "to_zai"),          # opt-in: no enforcement, full features
    (True, True, LANE_ZAI, "to_zai"),            # a licence that grants zai_offload
    (True, False, LANE_ANTHROPIC, "license_block"),
])
def test_licence_row_4a(enforced, allows, lane, reason):
    policy = RoutingPolicy(licence_enforced=enforced, licence_allows_offload=allows)
    d = decide(RequestMeta("claude-haiku-4-5"), policy)
    assert (d.lane, d.provider, d.upstream_model, d.reason) == (lane, lane, "claude-haiku-4-5", reason)


def test_licence_block_touches_only_the_haiku_row():
    policy = RoutingPolicy(licence_enforced=True, licence_allows_offload=False)
    assert decide(RequestMeta("claude-sonnet-4-5"), policy).reason == "to_anth"
    assert decide(RequestMeta("claude-haiku-4-5"), policy._replace(offload_paused=True)).reason \
        == "offload_paused"
    assert decide(RequestMeta("claude-haiku-4-5"), policy._replace(force_haiku_to_zai=False)).reason \
        == "to_anth"
    assert decide(RequestMeta("claude-haiku-4-5"), policy, _catalog()).reason == "route"


def test_old_positional_policy_still_works():
    assert RoutingPolicy(False, True) == RoutingPolicy()
    assert decide(RequestMeta("claude-haiku-4-5"), RoutingPolicy(False, True)).reason == "to_zai"
