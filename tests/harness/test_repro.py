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


def test_streamed_tokens_carry_the_split_character():
    from harness.repro import SPLIT_CHAR
    items = plan(1, "h", "s", long_stream=False)
    assert all(i.token.endswith(SPLIT_CHAR) for i in items if i.stream)
    assert not any(SPLIT_CHAR in i.token for i in items if not i.stream)


def test_secret_plan_carries_each_lanes_own_key():
    from harness.repro import secret_plan
    keys = {"ZAI_API_KEY": "zk-123456789", "ANTHROPIC_AUTH_TOKEN": "ak-123456789"}
    items = secret_plan("h", "s", keys)
    assert [(i.auth, i.expect, i.expect_lane) for i in items] == [
        ("session", "answer", "zai"), ("session", "answer", "anthropic"), (None, "partial", "zai")]
    for i in items:
        assert (keys["ZAI_API_KEY"] if i.expect_lane == "zai" else keys["ANTHROPIC_AUTH_TOKEN"]) in i.token
    assert "reset_mid_stream" in items[2].headers["x-mock-fault"]


def test_every_runbook_toggle_is_probed():
    from harness.repro import NOT_PROBED_TOGGLES, TOGGLE_PROBES, TOGGLES
    probed = {name for name, _, _ in TOGGLE_PROBES}
    assert set(TOGGLES) - probed == {"MITM_FILTER_CHAIN"}
    assert all(n.split()[0] not in probed for n in NOT_PROBED_TOGGLES)
    assert all("mock" in expect for _, _, expect in TOGGLE_PROBES)


def test_the_property_plan_probes_what_each_gate_needs():
    from harness.repro import (
        CATALOG,
        CATALOG_MODEL,
        CATALOG_ROUTE,
        FORBIDDEN_HEADERS,
        GZIP,
        OVERRIDE_MODEL,
        plan,
        property_plan,
        secret_plan,
    )
    keys = {"ZAI_API_KEY": "zk-123456789", "ANTHROPIC_AUTH_TOKEN": "ak-123456789"}
    items = property_plan("h", "s", keys)
    others = plan(3, "h", "s", long_stream=True) + secret_plan("h", "s", keys)
    tokens = [i.token for i in items + others]
    assert len(set(tokens)) == len(tokens) and all(i.kind == "http" for i in items)
    assert {i.expect_lane for i in items if i.model == OVERRIDE_MODEL} == {"anthropic"}
    foreign = [i for i in items if i.auth in ("none", "zai_key", "zai_bearer", "catalog_key")]
    assert len(foreign) == 4 and all(i.expect_auth == {"authorization": "Bearer ak-123456789"}
                                     for i in foreign)
    assert {i.expect_lane for i in items if i.headers == FORBIDDEN_HEADERS} == {"zai", "anthropic"}
    assert any(k.startswith("x-ccp-") for k in FORBIDDEN_HEADERS)
    assert FORBIDDEN_HEADERS["connection"].split(", ")[1] in FORBIDDEN_HEADERS
    [route] = [i for i in items if i.expect_lane == CATALOG]
    assert (route.model, route.expect_model) == (CATALOG_ROUTE, CATALOG_MODEL)
    assert {i.stream for i in items if i.headers == GZIP} == {False, True}
    assert [i.stream for i in items if i.first_event] == [True]
    assert [i.expect for i in items].count("error") == 2
    # pause then resume, each followed by the haiku id the earlier probes had routed already
    assert [(i.controls, i.expect_lane) for i in items if i.controls] == [
        ({"paused": True}, "anthropic"), ({"paused": False}, "zai")]


def test_the_catalog_file_routes_the_alias_to_its_own_provider(tmp_path):
    from harness.repro import (
        CATALOG,
        CATALOG_KEY,
        CATALOG_KEY_ENV,
        CATALOG_MODEL,
        CATALOG_ROUTE,
        catalog_file,
    )
    from proxy.config.load import load_settings
    path = catalog_file(tmp_path / "logs", "http://127.0.0.1:9")
    settings = load_settings({"CCP_PROVIDERS_FILE": str(path), CATALOG_KEY_ENV: CATALOG_KEY,
                              "CCP_CONFIG_HOME": str(tmp_path / "home")})
    provider = settings.catalog.providers[CATALOG]
    assert provider.api_key.reveal() == CATALOG_KEY
    assert str(provider.base_url).startswith("http://127.0.0.1:9")
    assert CATALOG_ROUTE in path.read_text() and CATALOG_MODEL in path.read_text()
