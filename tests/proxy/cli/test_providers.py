import json

import pytest

from proxy.cli.providers import main, providers_view
from proxy.config.load import load_settings

pytestmark = pytest.mark.quick


def test_view_shows_lanes_and_credential_names_only():
    view = providers_view(load_settings({"ZAI_API_KEY": "zsecret", "ZAI_HEADER_MODE": "authorization"}))
    by_name = {p["name"]: p for p in view}
    assert by_name["zai"]["credential_set"] and by_name["zai"]["header_mode"] == "authorization"
    assert not by_name["anthropic"]["credential_set"]
    assert "zsecret" not in json.dumps(view)
    assert {p["source"] for p in view} == {"built-in"}


def test_main_prints_json(capsys, monkeypatch):
    monkeypatch.setenv("CCP_ZAI_BASE_URL", "http://127.0.0.1:9/api/anthropic")
    assert main(["--json"]) == 0
    view = json.loads(capsys.readouterr().out)
    assert view[1]["base_url"] == "http://127.0.0.1:9/api/anthropic"


def test_view_merges_the_catalog_with_routes_and_sources(tmp_path):
    f = tmp_path / "providers.yaml"
    f.write_text("providers:\n  alt: {base_url: 'https://alt.test', key_env: ALT_KEY,"
                 " routes: [{name: my-alias, model: claude-sonnet-4-5}]}\n")
    view = providers_view(load_settings({"CCP_PROVIDERS_FILE": str(f), "ALT_KEY": "alt-secret"}))
    assert [p["name"] for p in view] == ["anthropic", "zai", "alt"]
    alt = view[2]
    assert (alt["source"], alt["credential_env"], alt["credential_set"]) == (str(f), "ALT_KEY", True)
    assert alt["routes"] == [{"name": "my-alias", "upstream_model": "claude-sonnet-4-5", "source": str(f)}]
    assert "alt-secret" not in json.dumps(view)


def test_main_table_shows_routes_and_the_override(capsys, monkeypatch, tmp_path):
    f = tmp_path / "providers.yaml"
    f.write_text("providers:\n  alt: {base_url: 'https://alt.test', api_key: inline-secret,"
                 " routes: [my-alias]}\n")
    monkeypatch.setenv("CCP_PROVIDERS_FILE", str(f))
    monkeypatch.setenv("CCP_MODEL", "my-alias")
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "routes: my-alias" in out and "(inline key)" in out and str(f) in out
    assert "manual override: my-alias (from CCP_MODEL)" in out and "inline-secret" not in out


def test_view_and_table_show_the_profile_and_its_knobs(capsys, monkeypatch, tmp_path):
    f = tmp_path / "providers.yaml"
    f.write_text("providers:\n"
                 "  ds: {protocol: openai, base_url: 'https://ds.test', key_env: DS_KEY,"
                 " profile: {name: deepseek, drop_fields: [top_p, reasoning_effort]}}\n"
                 "  plain: {protocol: openai, base_url: 'https://plain.test', key_env: P_KEY}\n"
                 "  zai: {profile: zai-anthropic}\n")
    view = providers_view(load_settings({"CCP_PROVIDERS_FILE": str(f)}))
    by_name = {p["name"]: p for p in view}
    assert by_name["ds"]["profile"] == "deepseek"
    assert by_name["ds"]["knobs"]["drop_fields"] == ["reasoning_effort", "top_p"]
    assert by_name["ds"]["knobs"]["max_tokens_cap"] == 8192
    assert by_name["plain"]["profile"] is None and by_name["plain"]["knobs"] is None
    monkeypatch.setenv("CCP_PROVIDERS_FILE", str(f))
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "profile: deepseek (cap 8192; drops reasoning_effort, top_p)" in out
    assert "profile: zai-anthropic (betas: none)" in out
    assert out.count("profile: ") == 2  # none for the providers without one
    assert main(["--json"]) == 0
    assert json.loads(capsys.readouterr().out)[1]["profile"] == "zai-anthropic"
