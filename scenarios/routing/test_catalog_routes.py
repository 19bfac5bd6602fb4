"""A providers file routes a model name to its own provider (routing row 3), and a bad file stops the
shim at start with exit 2 and an error naming the file, key and value.

The route: model `my-sonnet-alias` -> provider `alt` (the Anthropic mock, credential from `ALT_KEY`)
as upstream model `claude-sonnet-4-5-20250929`. The record says lane `alt`, decision `route`; the
mock sees the alt key (never the client's, nor a lane key) and the upstream model in the body.
"""
import subprocess
import sys
from pathlib import Path

import pytest

from harness.probe_kinds import probe
from harness.shim import PROJECT_ROOT, clean_env

pytestmark = [pytest.mark.repro, pytest.mark.repro_go]

ALT_KEY = "alt-test-key-3c9d1e77"
UPSTREAM_MODEL = "claude-sonnet-4-5-20250929"


def test_a_catalog_route_sends_the_model_to_its_provider(make_shim, mock_anthropic, mock_zai, keys,
                                                        tmp_path):
    providers = tmp_path / "providers.yaml"
    providers.write_text(f"providers:\n"
                         f"  alt:\n"
                         f"    base_url: {mock_anthropic.base_url}\n"
                         f"    key_env: ALT_KEY\n"
                         f"    routes:\n"
                         f"      - name: my-sonnet-alias\n"
                         f"        model: {UPSTREAM_MODEL}\n")
    shim = make_shim({"CCP_PROVIDERS_FILE": str(providers), "ALT_KEY": ALT_KEY,
                      "CCP_CONFIG_HOME": str(tmp_path / "home")})  # no user file, no model file
    res = probe("http", shim.url, "my-sonnet-alias", api_key=keys["CLIENT_API_KEY"])
    assert res.ok, res.error
    rec = shim.record_for(res.rid)
    assert (rec["lane"], rec["provider"], rec["decision"]) == ("alt", "alt", "route")
    assert (rec["model"], rec["upstream_model"]) == ("my-sonnet-alias", UPSTREAM_MODEL)
    assert "header_mode" not in rec or rec["header_mode"] == "x-api-key"
    assert len(mock_anthropic.calls) == 1 and mock_zai.calls == []
    call = mock_anthropic.calls[0]
    assert call.headers["x-api-key"] == ALT_KEY
    assert "authorization" not in {k.lower() for k in call.headers}
    assert call.json["model"] == UPSTREAM_MODEL
    assert ALT_KEY not in shim.stderr_path.read_text()


def test_a_bad_providers_file_stops_the_shim_at_start():
    bad = Path(PROJECT_ROOT) / "fixtures" / "config" / "bad" / "unresolved-env.yaml"
    out = subprocess.run([sys.executable, "-m", "proxy", "serve", "--port", "0"],
                         env=clean_env({"CCP_PROVIDERS_FILE": str(bad)}), cwd=PROJECT_ROOT,
                         stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith(f"ConfigError: {bad}: routes[0].api_key: unresolved reference")
    assert "(value: 'ENV:CCP_TEST_UNSET_KEY')" in out.stderr and "Traceback" not in out.stderr
    assert out.stdout == ""
