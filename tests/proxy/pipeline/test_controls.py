"""The runtime controls as pure data: origins at start, checked updates, the next snapshot, and the
settings a request reads from it (routing through them with the real decide())."""
import pytest

from proxy.config.load import load_settings
from proxy.config.settings import Settings
from proxy.core.routing import RequestMeta, decide
from proxy.pipeline import controls as rc

pytestmark = pytest.mark.quick

HAIKU = "claude-haiku-4-5-20251001"
PROVIDERS = """providers:
  alt:
    base_url: https://alt.test
    key_env: ALT_KEY
    routes: [{name: my-sonnet, model: claude-sonnet-4-5}, {name: "gpt-*"}]
"""


@pytest.fixture
def providers(tmp_path):
    path = tmp_path / "providers.yaml"
    path.write_text(PROVIDERS)
    return path


def settings(tmp_path, **env):
    return load_settings({"CCP_CONFIG_HOME": str(tmp_path / "home"), "ZAI_API_KEY": "zk",
                              **env})


def route(s: Settings, model: str):
    return decide(RequestMeta(model), s.routing, s.catalog, s.model_override)


def test_origins_at_start_name_the_variable_or_the_file(tmp_path, providers):
    plain = rc.initial(settings(tmp_path), 100.0)
    assert (plain.paused, plain.zai_header_mode, plain.model) == (False, "x-api-key", None)
    assert {k: o.kind for k, o in plain.origins.items()} == {
        "paused": "default", "zai_header_mode": "default", "model": "default",
        "providers": "default"}
    s = settings(tmp_path, OFFLOAD_PAUSED="1", ZAI_HEADER_MODE="authorization",
                 CCP_MODEL="my-sonnet", CCP_PROVIDERS_FILE=str(providers))
    env = rc.initial(s, 100.0)
    assert (env.paused, env.zai_header_mode, env.model) == (True, "authorization", "my-sonnet")
    assert env.origins["paused"] == rc.Origin("env", "OFFLOAD_PAUSED")
    assert env.origins["zai_header_mode"] == rc.Origin("env", "ZAI_HEADER_MODE")
    assert env.origins["model"] == rc.Origin("env", "CCP_MODEL")
    assert env.files == (s.providers_file,) and s.providers_file.endswith("providers.yaml")
    assert env.origins["providers"] == rc.Origin("file", s.providers_file)


def test_the_model_file_and_a_file_header_mode_are_file_origins(tmp_path):
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "model").write_text("claude-opus-4-1\n")
    f = tmp_path / "zai.yaml"
    f.write_text("providers:\n  zai: {header_mode: bearer}\n")
    c = rc.initial(settings(tmp_path, CCP_PROVIDERS_FILE=str(f)), 0.0)
    assert c.model == "claude-opus-4-1"
    assert c.origins["model"] == rc.Origin("file", str(tmp_path / "home" / "model"))
    assert c.zai_header_mode == "authorization" and c.origins["zai_header_mode"].kind == "file"


@pytest.mark.parametrize("name,ok", [
    ("haiku", True), ("sonnet", True), ("opus", True), ("claude-sonnet-4-5", True),
    ("claude-3-5-haiku-latest", True), ("my-sonnet", True), ("gpt-4o", True),
    ("gpt", False), ("glm-4.6", False), ("llama3", False), ("sonnetish", False)])
def test_servable_names_follow_decide_row_2(tmp_path, providers, name, ok):
    s = settings(tmp_path, CCP_PROVIDERS_FILE=str(providers))
    assert rc.servable(name, s.catalog) is ok


def test_an_unservable_model_lists_what_can_be_served(tmp_path, providers):
    catalog = settings(tmp_path, CCP_PROVIDERS_FILE=str(providers)).catalog
    with pytest.raises(ValueError) as exc:
        rc.parse_updates({"model": "glm-4.6"}, catalog)
    message = str(exc.value)
    assert message.startswith("model 'glm-4.6': no lane or route serves it")
    for expected in ("haiku, sonnet, opus", "my-sonnet -> route to alt, model claude-sonnet-4-5",
                     "gpt-* -> route (glob) to alt", "the zai lane takes an override only"):
        assert expected in message


@pytest.mark.parametrize("body,expected", [
    ({}, "expected a JSON object with one or more of paused, zai_header_mode, model"),
    ([], "expected a JSON object"),
    ({"pause": True}, "unknown control 'pause': expected paused, zai_header_mode, model"),
    ({"providers": "x"}, "POST /v1/admin/providers/reload"),
    ({"paused": "yes"}, "paused='yes': expected true or false"),
    ({"zai_header_mode": "token"}, "expected one of x-api-key, authorization, bearer"),
    ({"zai_header_mode": 1}, "zai_header_mode=1"),
    ({"model": "two words"}, "expected a route name or a model id (no spaces)"),
    ({"model": ""}, "or null to clear the override"),
])
def test_bad_updates_name_the_valid_choices(tmp_path, body, expected):
    with pytest.raises(ValueError) as exc:
        rc.parse_updates(body, settings(tmp_path).catalog)
    assert expected in str(exc.value)


def test_updates_are_parsed_together(tmp_path):
    catalog = settings(tmp_path).catalog
    assert rc.parse_updates({"paused": True, "zai_header_mode": " Bearer ", "model": None},
                            catalog) == {"paused": True, "zai_header_mode": "authorization",
                                         "model": None}
    with pytest.raises(ValueError):  # one bad value: none of them applies
        rc.parse_updates({"paused": True, "zai_header_mode": "nope"}, catalog)


def test_changed_counts_real_changes_and_records_who_and_when(tmp_path):
    start = rc.initial(settings(tmp_path), 1.0)
    same, none = rc.changed(start, {"paused": False}, "me", 2.0)
    assert same is start and none == []
    paused, changes = rc.changed(start, {"paused": True, "zai_header_mode": "x-api-key"}, "me", 3.0)
    assert changes == [rc.Change("paused", False, True)]
    assert paused.paused and paused.origins["paused"] == rc.Origin("runtime", "me", 3.0)
    assert paused.origins["zai_header_mode"] == start.origins["zai_header_mode"]
    assert start.paused is False  # snapshots are never changed in place


def test_effective_settings_route_as_the_controls_say(tmp_path, providers):
    base = settings(tmp_path, CCP_PROVIDERS_FILE=str(providers))
    start = rc.initial(base, 0.0)
    assert route(rc.effective_settings(base, start), HAIKU).reason == "to_zai"
    paused, _ = rc.changed(start, {"paused": True}, "t", 1.0)
    d = route(rc.effective_settings(base, paused), HAIKU)
    assert (d.lane, d.reason) == ("anthropic", "offload_paused")
    model, _ = rc.changed(start, {"model": "my-sonnet"}, "t", 1.0)
    eff = rc.effective_settings(base, model)
    assert tuple(route(eff, HAIKU))[:4] == ("alt", "alt", "claude-sonnet-4-5", "manual_override")
    assert eff.model_override_source == "runtime: t"
    mode, _ = rc.changed(start, {"zai_header_mode": "authorization"}, "t", 1.0)
    eff = rc.effective_settings(base, mode)
    assert eff.catalog.provider("zai").header_mode == "authorization"
    assert eff.catalog.routes == base.catalog.routes and eff.catalog.match("my-sonnet") is not None
    assert base.catalog.provider("zai").header_mode == "x-api-key"  # the start settings stay


def test_reloaded_takes_the_new_catalog_and_keeps_a_runtime_header_mode(tmp_path, providers):
    base = settings(tmp_path)
    start = rc.initial(base, 0.0)
    fresh = settings(tmp_path, CCP_PROVIDERS_FILE=str(providers), ZAI_HEADER_MODE="authorization")
    new, change = rc.reloaded(start, fresh, "POST r", 5.0)
    assert new.catalog.match("my-sonnet") is not None and new.loaded_at == 5.0
    assert new.zai_header_mode == "authorization"  # not set at runtime: the new settings' own
    assert change.control == "providers"
    assert change.old == {"files": [], "providers": ["anthropic", "zai"], "routes": []}
    assert change.new["providers"] == ["anthropic", "zai", "alt"]
    assert change.new["routes"] == ["my-sonnet", "gpt-*"]
    kept, _ = rc.changed(start, {"zai_header_mode": "x-api-key"}, "t", 1.0)  # no change: default
    assert kept.origins["zai_header_mode"].kind == "default"
    runtime, _ = rc.changed(start, {"zai_header_mode": "authorization"}, "t", 1.0)
    again, _ = rc.reloaded(runtime, settings(tmp_path), "POST r", 6.0)
    assert again.zai_header_mode == "authorization"
    assert again.origins["zai_header_mode"].kind == "runtime"


def test_a_reload_that_strands_the_override_is_refused(tmp_path, providers):
    base = settings(tmp_path, CCP_PROVIDERS_FILE=str(providers))
    on_route, _ = rc.changed(rc.initial(base, 0.0), {"model": "gpt-4o"}, "t", 1.0)
    with pytest.raises(ValueError, match="override 'gpt-4o'"):
        rc.reloaded(on_route, settings(tmp_path), "POST r", 2.0)
    family, _ = rc.changed(rc.initial(base, 0.0), {"model": "claude-opus-4-1"}, "t", 1.0)
    assert rc.reloaded(family, settings(tmp_path), "POST r", 2.0)[0].model == "claude-opus-4-1"


def test_public_shows_values_origins_and_choices(tmp_path):
    c, _ = rc.changed(rc.initial(settings(tmp_path), 0.0), {"paused": True}, "POST x (ccp pause)",
                      1_800_000_000.0)
    body = rc.public(c)
    assert body["paused"] is True and body["model"] is None
    assert body["sources"]["paused"] == {"origin": "runtime", "detail": "POST x (ccp pause)",
                                         "changed_at": "2027-01-15T08:00:00.000Z"}
    assert body["providers"]["providers"] == ["anthropic", "zai"]
    assert body["choices"]["zai_header_mode"] == ["x-api-key", "authorization", "bearer"]
