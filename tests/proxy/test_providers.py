import json

import pytest

from proxy.providers import main, providers_view
from proxy.settings import Settings

pytestmark = pytest.mark.quick


def test_view_shows_lanes_and_credential_names_only():
    view = providers_view(Settings.from_env({"ZAI_API_KEY": "zsecret", "ZAI_HEADER_MODE": "authorization"}))
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
