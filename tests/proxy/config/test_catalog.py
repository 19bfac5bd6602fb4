import json
from pathlib import Path

import pytest

from proxy.config.catalog import (
    BUILT_IN,
    Catalog,
    Provider,
    Route,
    load_catalog,
    merge,
    parse_config,
    parse_yaml,
)
from proxy.config.load import load_settings
from proxy.config.settings import Settings
from proxy.core.parse import ConfigError
from proxy.core.redact import Secret

pytestmark = pytest.mark.quick

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "config"
ROUTES_FILE = str(FIXTURES / "llmproxy-cfg.yaml")
PROVIDERS_FILE = str(FIXTURES / "providers.yaml")
GLM_KEY = "glm-secret-4f1c9e"
ANT_KEY = "sk-ant-secret-77aa01"


def settings(tmp_path=None, **env) -> Settings:
    if tmp_path is not None:
        env.setdefault("CCP_CONFIG_HOME", str(tmp_path / "home"))
    return load_settings(env)


def test_no_files_means_the_built_in_lanes():
    s = settings(ZAI_API_KEY="z")
    assert [p["name"] for p in s.catalog.view()] == ["anthropic", "zai"]
    assert {p["source"] for p in s.catalog.view()} == {BUILT_IN}
    assert s.catalog.routes == () and s.catalog.match("claude-sonnet-4-5") is None
    zai = s.catalog.provider("zai")
    assert (zai.base_url, zai.api_key, zai.header_mode) == (s.zai_base_url, Secret("z"), "x-api-key")


def test_settings_made_directly_have_the_built_in_lanes():
    s = Settings(anthropic_base_url="http://127.0.0.1:9")
    assert s.catalog.provider("anthropic").base_url == "http://127.0.0.1:9"


def test_routes_file_shape_one_provider_per_route():
    s = settings(CCP_CONFIG=ROUTES_FILE, GLM_API_KEY=GLM_KEY, ANTHROPIC_API_KEY=ANT_KEY)
    route = s.catalog.match("glm-4.6")
    assert route == Route("glm-4.6", "route:glm-4.6", "glm-4.6-chat", ROUTES_FILE)
    glm = s.catalog.provider("route:glm-4.6")
    assert glm == Provider("route:glm-4.6", "openai", "http://127.0.0.1:9000/v1", Secret(GLM_KEY),
                           "GLM_API_KEY", "authorization", ROUTES_FILE)
    sonnet = s.catalog.provider(s.catalog.match("CLAUDE-SONNET-5-5").provider)
    assert (sonnet.protocol, sonnet.header_mode, sonnet.api_key) == ("anthropic", "x-api-key",
                                                                     Secret(ANT_KEY))
    assert s.catalog.match("claude-sonnet-5-5").upstream_model is None


def test_providers_file_shape_with_built_in_override_field_by_field():
    s = settings(CCP_PROVIDERS_FILE=PROVIDERS_FILE, ZAI_API_KEY="zk", GLM_API_KEY=GLM_KEY,
                 CCP_ZAI_BASE_URL="http://127.0.0.1:7/api/anthropic")
    zai = s.catalog.provider("zai")
    # header_mode and routes come from the file; base_url stays the built-in one
    assert (zai.base_url, zai.header_mode, zai.source) == ("http://127.0.0.1:7/api/anthropic",
                                                           "authorization", PROVIDERS_FILE)
    assert s.catalog.match("glm-4.5-air").provider == "zai"
    glm = s.catalog.provider("glm")
    assert (glm.protocol, glm.header_mode, glm.key_env) == ("openai", "authorization", "GLM_API_KEY")
    assert [p["name"] for p in s.catalog.view()][:2] == ["anthropic", "zai"]


def test_key_env_may_be_unset_and_shows_as_unset():
    s = settings(CCP_PROVIDERS_FILE=PROVIDERS_FILE)
    glm = next(p for p in s.catalog.view() if p["name"] == "glm")
    assert (glm["credential_env"], glm["credential_set"]) == ("GLM_API_KEY", False)


def test_exact_names_before_globs_then_file_order():
    s = settings(CCP_PROVIDERS_FILE=PROVIDERS_FILE, GLM_API_KEY=GLM_KEY)
    assert s.catalog.match("glm-4.6").name == "glm-4.6"
    assert s.catalog.match("GLM-4.5-Air").provider == "zai"  # exact, case-insensitive
    assert s.catalog.match("glm-5-preview").name == "glm-*"
    assert s.catalog.match("claude-haiku-4-5") is None


def test_precedence_user_over_repo_over_built_in(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    user_file = home / "providers.yaml"
    user_file.write_text("providers:\n"
                         "  zai: {base_url: 'http://127.0.0.1:5/api/anthropic'}\n"
                         "  glm: {protocol: openai, base_url: 'http://127.0.0.1:6/v1', key_env: MY_GLM,"
                         " routes: [{name: glm-4.6, model: glm-user}]}\n")
    s = settings(tmp_path, CCP_CONFIG=ROUTES_FILE, CCP_PROVIDERS_FILE=PROVIDERS_FILE,
                 GLM_API_KEY=GLM_KEY, ANTHROPIC_API_KEY=ANT_KEY, MY_GLM="mine")
    by_name = {p["name"]: p for p in s.catalog.view()}
    assert by_name["anthropic"]["source"] == BUILT_IN
    # zai: the user's base_url over the repo file's header_mode over the built-in key name
    zai = s.catalog.provider("zai")
    assert (zai.base_url, zai.header_mode, zai.key_env, zai.source) == (
        "http://127.0.0.1:5/api/anthropic", "authorization", "ZAI_API_KEY", str(user_file))
    assert by_name["glm"]["source"] == str(user_file)
    route = s.catalog.match("glm-4.6")  # the user's route beats both repo files' glm-4.6
    assert (route.provider, route.upstream_model, route.source) == ("glm", "glm-user", str(user_file))
    assert s.catalog.match("glm-4.5-air").source == PROVIDERS_FILE
    assert s.catalog.match("claude-sonnet-5-5").source == ROUTES_FILE
    # the routes file's own glm-4.6 provider went with its shadowed route
    assert "route:glm-4.6" not in by_name
    assert s.catalog.provider("glm").api_key == Secret("mine")


def test_routes_file_may_name_a_provider_from_another_file(tmp_path):
    routes = tmp_path / "routes.yaml"
    routes.write_text("routes:\n  - {name: fast, provider: glm, model: glm-4.5-air}\n"
                      "  - {name: cheap-*, provider: zai}\n")
    s = settings(tmp_path, CCP_CONFIG=str(routes), CCP_PROVIDERS_FILE=PROVIDERS_FILE)
    assert s.catalog.match("fast") == Route("fast", "glm", "glm-4.5-air", str(routes))
    assert s.catalog.match("cheap-one").provider == "zai"


def test_both_shapes_in_one_file_and_providers_as_a_list():
    layer = parse_config(parse_yaml(
        "providers:\n  - {name: alt, base_url: 'https://alt.test', api_key: lit-key}\n"
        "routes:\n  - {name: a1, provider: alt}\n"), {}, "f.yaml")
    assert layer.providers["alt"]["key_env"] is None and layer.providers["alt"]["api_key"]
    assert merge({}, [layer]).match("a1").provider == "alt"


def test_header_mode_bearer_is_authorization_and_defaults_follow_protocol():
    layer = parse_config({"providers": {
        "a": {"base_url": "https://a.test", "key_env": "K", "header_mode": "Bearer"},
        "b": {"base_url": "https://b.test", "key_env": "K"},
        "c": {"base_url": "https://c.test", "key_env": "K", "protocol": "openai"}}}, {}, "f")
    modes = {n: f["header_mode"] for n, f in layer.providers.items()}
    assert modes == {"a": "authorization", "b": "x-api-key", "c": "authorization"}


def test_view_never_holds_a_secret():
    s = settings(CCP_CONFIG=ROUTES_FILE, CCP_PROVIDERS_FILE=PROVIDERS_FILE, GLM_API_KEY=GLM_KEY,
                 ANTHROPIC_API_KEY=ANT_KEY, ZAI_API_KEY="zai-secret-1")
    text = json.dumps(s.catalog.view()) + repr(s) + repr(s.catalog)
    assert GLM_KEY not in text and ANT_KEY not in text and "zai-secret-1" not in text
    assert set(s.secrets()) == {GLM_KEY, ANT_KEY, "zai-secret-1"}


BAD = [  # file, key path, value shown
    ("bad-yaml.yaml", "line 4, column 13", "not parsed"),
    ("no-key.yaml", "providers.glm", "keys protocol, base_url"),
    ("unresolved-env.yaml", "routes[0].api_key", "'ENV:CCP_TEST_UNSET_KEY'"),
    ("bad-protocol.yaml", "providers.glm.protocol", "'grpc'"),
    ("bad-base-url.yaml", "routes[0].base_url", "'ftp://example.test'"),
    ("bad-header-mode.yaml", "providers.glm.header_mode", "'cookie'"),
    ("route-without-name.yaml", "routes[0].name", "keys protocol, base_url, api_key"),
    ("duplicate-route.yaml", "routes[0].name", "'GLM-4.6'"),
    ("literal-key-no-url.yaml", "routes[0].base_url", "keys name, protocol, api_key"),
    ("unknown-provider.yaml", "routes[0].provider", "'nowhere'"),
]


@pytest.mark.parametrize("name, key, value", BAD, ids=[b[0] for b in BAD])
@pytest.mark.parametrize("var", ["CCP_CONFIG", "CCP_PROVIDERS_FILE"])
def test_bad_file_error_names_file_key_and_value(name, key, value, var):
    path = str(FIXTURES / "bad" / name)
    with pytest.raises(ConfigError) as err:
        settings(**{var: path, "GLM_API_KEY": GLM_KEY})
    msg = str(err.value)
    assert msg.startswith(f"{path}: {key}: ")
    assert msg.endswith(f"(value: {value})")
    assert GLM_KEY not in msg and "sk-literal-secret" not in msg


@pytest.mark.parametrize("entry, key", [
    ({"base_url": "https://a.test", "api_key": 12345678}, "providers.p.api_key"),
    ({"base_url": "https://a.test", "key_env": "sk-pasted-key-123"}, "providers.p.key_env"),
    ({"base_url": "https://a.test", "api_key": "ENV:sk-pasted-key-123"}, "providers.p.api_key"),
])
def test_a_credential_in_the_wrong_place_is_masked(entry, key):
    with pytest.raises(ValueError) as err:
        parse_config({"providers": {"p": entry}}, {}, "f")
    assert str(err.value).startswith(key + ": ")
    assert "12345678" not in str(err.value) and "sk-pasted" not in str(err.value)


def test_yaml_error_does_not_quote_the_file():
    with pytest.raises(ValueError) as err:
        parse_yaml("providers:\n  p:\n    api_key: sk-abc-secret\n     x: [\n")
    assert "line" in str(err.value) and "sk-abc-secret" not in str(err.value)


def test_an_explicitly_named_file_must_exist(tmp_path):
    with pytest.raises(ConfigError, match="CCP_PROVIDERS_FILE=.*file not found"):
        settings(CCP_PROVIDERS_FILE=str(tmp_path / "nope.yaml"))
    with pytest.raises(ConfigError, match="CCP_CONFIG=.*file not found"):
        settings(CCP_CONFIG=str(tmp_path / "nope.yaml"))


def test_user_file_comes_from_home_or_config_home(tmp_path):
    (tmp_path / ".config" / "ccp").mkdir(parents=True)
    (tmp_path / ".config" / "ccp" / "providers.yaml").write_text(
        "providers:\n  alt: {base_url: 'https://alt.test', key_env: ALT_KEY}\n")
    assert settings(HOME=str(tmp_path)).catalog.provider("alt").source.startswith(str(tmp_path))
    assert settings(HOME=str(tmp_path), CCP_CONFIG_HOME=str(tmp_path / "x")).catalog.provider("alt") is None


def test_repo_defaults_are_read_from_the_ccp_home_not_the_working_directory(tmp_path, monkeypatch):
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "providers.yaml").write_text(
        "providers:\n  alt: {base_url: 'https://alt.test', key_env: ALT_KEY, routes: [a]}\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    s = load_settings({"CCP_HOME": str(tmp_path), "ALT_KEY": "k"})
    want = str(tmp_path / "configs" / "providers.yaml")
    assert s.providers_file == want and s.config_file is None
    assert s.catalog.match("a").source == want


def test_load_catalog_reports_an_unreadable_file(tmp_path):
    s = Settings(providers_file=str(tmp_path))  # a folder, not a file
    with pytest.raises(ConfigError, match=f"^{tmp_path}: cannot read"):
        load_catalog(s, {})


def test_empty_file_is_no_entries(tmp_path):
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing yet\n")
    s = settings(CCP_PROVIDERS_FILE=str(empty))
    assert isinstance(s.catalog, Catalog) and len(s.catalog.view()) == 2


def test_base_url_may_be_an_env_reference():
    from proxy.config.catalog import parse_config
    data = {"routes": [{"name": "glm-4.6", "protocol": "openai", "base_url": "ENV:GLM_BASE_URL",
                        "api_key": "ENV:GLM_API_KEY"}]}
    layer = parse_config(data, {"GLM_BASE_URL": "http://127.0.0.1:9/v1", "GLM_API_KEY": "k" * 12}, "f.yaml")
    assert "http://127.0.0.1:9/v1" in repr(layer)
    with pytest.raises(ValueError, match=r"routes\[0\].base_url: unresolved reference: GLM_BASE_URL"):
        parse_config(data, {"GLM_API_KEY": "k" * 12}, "f.yaml")


# --- provider profiles ----------------------------------------------------------------------------

def test_providers_and_routes_may_name_a_profile_and_view_shows_its_knobs(tmp_path):
    from proxy.core.provider_profiles import PROFILES
    f = tmp_path / "providers.yaml"
    f.write_text("providers:\n"
                 "  ds: {protocol: openai, base_url: 'https://api.deepseek.test', key_env: DS,"
                 " profile: deepseek, routes: [deepseek-chat]}\n"
                 "  local: {protocol: openai, base_url: 'http://127.0.0.1:8000/v1', key_env: VL,"
                 " profile: {name: vllm, max_tokens_cap: 16384}}\n"
                 "  zai: {profile: zai-anthropic}\n"
                 "routes:\n"
                 "  - {name: kimi, protocol: openai, base_url: 'https://api.moonshot.test/v1',"
                 " key_env: KIMI, profile: moonshot}\n")
    s = settings(tmp_path, CCP_PROVIDERS_FILE=str(f))
    cat = s.catalog
    assert cat.provider("ds").profile is PROFILES["deepseek"]
    assert cat.provider("local").profile.max_tokens_cap == 16384
    assert cat.provider("route:kimi").profile is PROFILES["moonshot"]
    zai = cat.provider("zai")  # a built-in lane keeps its own fields and gains the profile
    assert zai.profile is PROFILES["zai-anthropic"] and zai.protocol == "anthropic"
    assert cat.provider("anthropic").profile is None
    view = {p["name"]: p for p in cat.view()}
    assert view["anthropic"]["profile"] is None and view["anthropic"]["knobs"] is None
    assert view["local"]["profile"] == "vllm"
    assert view["local"]["knobs"] == {"max_tokens_cap": 16384, "drop_fields": [], "beta_allow": None,
                                      "beta_drop": [], "schema_strip": ["additionalProperties"]}
    assert view["zai"]["knobs"]["beta_allow"] == []
    assert view["route:kimi"]["knobs"]["drop_fields"] == ["temperature"]


def test_a_provider_without_a_profile_has_none():
    layer = parse_config({"providers": {"a": {"base_url": "https://a.test", "key_env": "K"}}},
                         {}, "f")
    assert "profile" not in layer.providers["a"]
    assert merge({}, [layer]).provider("a").profile is None
    assert Provider("p", "openai", "https://p.test", Secret(""), None, "authorization",
                    "f").profile is None


@pytest.mark.parametrize("entry, message", [
    ({"providers": {"a": {"base_url": "https://a.test", "key_env": "K", "profile": "nope"}}},
     "providers.a.profile: unknown profile"),
    ({"providers": {"a": {"base_url": "https://a.test", "key_env": "K",
                          "profile": {"name": "openai", "cap": 1}}}},
     "providers.a.profile.cap: unknown profile knob"),
    ({"routes": [{"name": "r", "base_url": "https://r.test", "key_env": "K",
                  "profile": {"max_tokens_cap": -1}}]},
     "routes[0].profile.max_tokens_cap: expected a positive integer or null (value: -1)"),
    ({"routes": [{"name": "r", "provider": "zai", "profile": "deepseek"}]},
     "routes[0].profile: set the profile on provider zai (value: 'deepseek')"),
])
def test_profile_errors_name_the_key_path(entry, message):
    with pytest.raises(ValueError) as err:
        parse_config(entry, {}, "f.yaml")
    assert str(err.value).startswith(message)


def test_a_bad_profile_in_a_file_names_the_file(tmp_path):
    f = tmp_path / "providers.yaml"
    f.write_text("providers:\n  a: {base_url: 'https://a.test', key_env: K,"
                 " profile: {drop_fields: [model]}}\n")
    with pytest.raises(ConfigError) as err:
        settings(tmp_path, CCP_PROVIDERS_FILE=str(f))
    assert str(err.value).startswith(f"{f}: providers.a.profile.drop_fields: a request cannot")
