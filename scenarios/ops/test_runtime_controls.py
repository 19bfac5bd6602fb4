"""Runtime controls without a restart: the real `ccp pause`, `resume`, `set zai-header-mode`,
`model` and `providers reload` run as subprocesses against a real shim process, and the mock
upstreams say where each next request went and what it carried; the usage log holds one control
record per change.
With CCP_ADMIN_TOKEN set, a call without the token is refused and changes nothing.

The verbs find the shim by `--url` (the shim of `make_shim` writes no port file); their environment
shares the shim's config home, so `ccp model` writes the model file the shim would read at a start.
"""
import socket
import subprocess
import sys

import httpx
import pytest

from harness.gates import all_ok, run_gates
from harness.shim import PROJECT_ROOT, clean_env

pytestmark = [pytest.mark.repro_go, pytest.mark.hygiene]

HAIKU = "claude-haiku-4-5-20251001"
ADMIN = "adm-scenario-0123456789"


def ccp(shim, *args, env=None):
    """`python -m proxy ARGS --url <shim>` with the shim's logs folder and config home."""
    return ccp_at(shim.logs_dir, shim.url, *args, env=env)


def ccp_at(logs_dir, url, *args, env=None):
    overlay = {"CCP_LOGS_DIR": str(logs_dir), "CCP_CONFIG_HOME": str(logs_dir / "config-home"),
               **(env or {})}
    return subprocess.run([sys.executable, "-m", "proxy", *args, "--url", url],
                          env=clean_env(overlay), cwd=PROJECT_ROOT, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=60)


def haiku(shim, keys, model=HAIKU) -> dict:
    """One haiku request through the shim; its usage record."""
    r = httpx.post(f"{shim.url}/v1/messages", trust_env=False, timeout=20,
                   headers={"x-api-key": keys["CLIENT_API_KEY"]},
                   json={"model": model, "max_tokens": 5,
                         "messages": [{"role": "user", "content": "Reply with exactly: ok"}]})
    assert r.status_code == 200, r.text
    return shim.record_for(r.headers["x-ccp-request-id"])


def ok(out) -> str:
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    return out.stdout


def control_records(shim) -> list[dict]:
    return [r for r in shim.records() if r["op"] == "control"]


def test_pause_resume_header_mode_and_model_on_a_running_shim(make_shim, mock_anthropic, mock_zai,
                                                              keys):
    shim = make_shim()
    assert haiku(shim, keys)["lane"] == "zai"
    assert mock_zai.calls[-1].headers["x-api-key"] == keys["ZAI_API_KEY"]

    assert "paused on" in ok(ccp(shim, "pause"))
    rec = haiku(shim, keys)
    assert (rec["lane"], rec["decision"]) == ("anthropic", "offload_paused")
    assert len(mock_zai.calls) == 1 and len(mock_anthropic.calls) == 1
    assert mock_anthropic.calls[0].headers["x-api-key"] == keys["CLIENT_API_KEY"]
    assert mock_anthropic.calls[0].json["model"] == HAIKU
    status = ok(ccp(shim, "status")).splitlines()
    assert status[0] == f"controls (running shim {shim.url}):"
    assert status[1].split()[:2] == ["paused", "yes:"]
    assert status[1].endswith("by POST /v1/admin/controls (ccp pause)")

    ok(ccp(shim, "resume"))
    assert haiku(shim, keys)["lane"] == "zai" and len(mock_zai.calls) == 2

    assert "zai header mode authorization" in ok(ccp(shim, "set", "zai-header-mode", "bearer"))
    rec = haiku(shim, keys)
    sent = mock_zai.calls[-1].headers
    assert sent["authorization"] == f"Bearer {keys['ZAI_API_KEY']}" and "x-api-key" not in sent
    assert rec["header_mode"] == "authorization"

    assert "applied on the running shim" in ok(ccp(shim, "model", "claude-opus-4-1"))
    assert (shim.logs_dir / "config-home" / "model").read_text() == "claude-opus-4-1\n"
    rec = haiku(shim, keys)
    assert (rec["lane"], rec["decision"]) == ("anthropic", "manual_override")
    assert mock_anthropic.calls[-1].json["model"] == "claude-opus-4-1"
    assert "manual override: claude-opus-4-1 (running shim" in ok(ccp(shim, "model"))

    refused = ccp(shim, "model", "gpt-5")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "model 'gpt-5': no lane or route serves it; names that can be served:" in refused.stderr
    assert "haiku, sonnet, opus (aliases)" in refused.stderr
    assert (shim.logs_dir / "config-home" / "model").read_text() == "claude-opus-4-1\n"

    ok(ccp(shim, "model", "--clear"))
    assert not (shim.logs_dir / "config-home" / "model").exists()
    haiku(shim, keys)
    assert mock_zai.calls[-1].json["model"] == HAIKU and len(mock_anthropic.calls) == 2

    changes = [(r["decision"], r["control"]["name"], r["control"]["from"], r["control"]["to"],
                r["control"]["by"]) for r in control_records(shim)]
    by = "POST /v1/admin/controls"
    assert changes == [
        ("control_change", "paused", False, True, f"{by} (ccp pause)"),
        ("control_change", "paused", True, False, f"{by} (ccp resume)"),
        ("control_change", "zai_header_mode", "x-api-key", "authorization", f"{by} (ccp set)"),
        ("control_change", "model", None, "claude-opus-4-1", f"{by} (ccp model)"),
        ("control_change", "model", "claude-opus-4-1", None, f"{by} (ccp model --clear)")]
    records = shim.records()
    assert sum(r["op"] != "control" for r in records) == 6  # one per model request, as before
    assert all_ok(run_gates(records))


def test_providers_reload_on_a_running_shim(make_shim, mock_anthropic, mock_zai, keys, tmp_path):
    providers = tmp_path / "providers.yaml"
    providers.write_text("providers: {}\n")
    shim = make_shim({"CCP_PROVIDERS_FILE": str(providers)})
    assert haiku(shim, keys, model="fast")["lane"] == "anthropic"  # no route yet: the table
    providers.write_text("providers:\n  zai:\n    routes: [{name: fast, model: glm-4.6}]\n")
    assert "1 route(s), from the next request" in ok(ccp(shim, "providers", "reload"))
    rec = haiku(shim, keys, model="fast")
    assert (rec["lane"], rec["decision"], rec["upstream_model"]) == ("zai", "route", "glm-4.6")
    assert mock_zai.calls[-1].json["model"] == "glm-4.6"

    providers.write_text("providers:\n  zai: {base_url: not-a-url}\n")
    broken = ccp(shim, "providers", "reload")
    assert broken.returncode == 2 and "Traceback" not in broken.stderr
    assert broken.stderr.startswith("ConfigError: providers not reloaded, the old catalog stays: ")
    haiku(shim, keys, model="fast")
    assert mock_zai.calls[-1].json["model"] == "glm-4.6" and len(mock_zai.calls) == 2
    (reload,) = control_records(shim)
    assert reload["control"]["name"] == "providers"
    assert reload["control"]["from"]["routes"] == []
    assert reload["control"]["to"]["routes"] == ["fast"]


def test_with_an_admin_token_a_call_without_it_is_refused_and_changes_nothing(
        make_shim, mock_anthropic, mock_zai, keys):
    shim = make_shim({"CCP_ADMIN_TOKEN": ADMIN})
    raw = httpx.post(f"{shim.url}/v1/admin/controls", json={"paused": True}, trust_env=False)
    assert raw.status_code == 401 and raw.json()["error"]["type"] == "authentication_error"
    refused = ccp(shim, "pause")
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1
    assert "refused the admin call" in refused.stderr
    assert haiku(shim, keys)["lane"] == "zai" and mock_anthropic.calls == []
    assert control_records(shim) == []

    ok(ccp(shim, "pause", env={"CCP_ADMIN_TOKEN": ADMIN}))
    assert haiku(shim, keys)["lane"] == "anthropic" and len(mock_anthropic.calls) == 1
    assert [r["control"]["to"] for r in control_records(shim)] == [True]


def test_without_a_shim_the_verb_says_so_in_one_line(tmp_path):
    with socket.socket() as s:  # a port nothing listens on once it is closed again
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
    out = ccp_at(tmp_path, url, "pause")
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr == (f"NotRunning: no shim answers on {url} (profile default): "
                          "nothing changed\n")
    model = ccp_at(tmp_path, url, "model", "claude-sonnet-4-5")
    assert model.returncode == 0 and "Traceback" not in model.stderr
    assert f"no shim answers on {url}: it applies when the shim starts" in model.stdout
    assert (tmp_path / "config-home" / "model").read_text() == "claude-sonnet-4-5\n"
