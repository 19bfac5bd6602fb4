"""HTTPS_PROXY mode with real clients: the `claude` CLI (its own login, no ANTHROPIC_BASE_URL) and
curl (`--proxy`, `--cacert`) reach the TLS mocks through `ccp mitm`; only Anthropic API hosts are
rerouted; `ccp mitm env` prints what a shell needs; `ccp repro --front mitm` passes its gates."""
from __future__ import annotations

import json
import subprocess
import sys

import httpx
import pytest

from harness.cli_probe import cli_probe, curl_probe
from harness.shim import PROJECT_ROOT, clean_env, wait_until

pytestmark = [pytest.mark.repro_mitm, pytest.mark.repro_py]


def test_claude_cli_through_https_proxy(make_front, tls_mocks, keys, claude_bin):
    anthropic, zai = tls_mocks
    front = make_front("mitm")
    haiku = cli_probe(front.base_url, "haiku", "Say hi", auth_token=keys["CLIENT_OAUTH_TOKEN"],
                      via=front.via, binary=claude_bin)
    sonnet = cli_probe(front.base_url, "sonnet", "Say hi", auth_token=keys["CLIENT_OAUTH_TOKEN"],
                       via=front.via, binary=claude_bin)
    assert haiku.ok and haiku.text == "Hello from mock zai", haiku.row()
    assert sonnet.ok and sonnet.text == "Hello from mock anthropic", sonnet.row()

    [zcall] = zai.calls
    assert zcall.path == "/api/anthropic/v1/messages" and "haiku" in zcall.json["model"]
    assert zcall.headers["x-api-key"] == keys["ZAI_API_KEY"] and "authorization" not in zcall.headers
    [acall] = anthropic.calls
    assert "sonnet" in acall.json["model"]
    # the CLI's own login reaches Anthropic; the shim's fallback credential is not used
    assert acall.headers["authorization"] == f"Bearer {keys['CLIENT_OAUTH_TOKEN']}"
    assert keys["ZAI_API_KEY"] not in json.dumps(acall.headers)
    # Claude Code's settings calls went to the anthropic lane, untouched and unrecorded
    assert anthropic.client_api and not zai.client_api

    recs = {r["lane"]: r for r in front.proc.wait_for_records(2)}
    assert len(front.proc.records()) == 2
    assert recs["zai"]["decision"] == "to_zai" and recs["zai"]["header_mode"] == "x-api-key"
    assert recs["anthropic"]["decision"] == "to_anth" and "header_mode" not in recs["anthropic"]
    for rec, call in ((recs["zai"], zcall), (recs["anthropic"], acall)):
        assert rec["op"] == "stream" and rec["sse"]["complete"] is True
        assert rec["sse"]["bytes"] == len(call.sent)  # every byte the mock sent was relayed
        assert rec["client_session"]  # Claude Code's session header, as in the shim

    # the shim's Prometheus series, fed from the same records
    metrics = httpx.get(f"{front.proc.admin_url}/metrics", trust_env=False).text
    assert 'ccp_requests_total{decision="to_zai",lane="zai",op="stream",status="200"} 1.0' in metrics
    assert 'ccp_requests_total{decision="to_anth",lane="anthropic",op="stream",status="200"} 1.0' \
        in metrics


def test_curl_with_proxy_and_cacert(make_front, tls_mocks, keys):
    anthropic, zai = tls_mocks
    front = make_front("mitm")
    res = curl_probe(front.base_url, "claude-haiku-4-5", stream=True, api_key=keys["CLIENT_API_KEY"],
                     via=front.via)
    assert res.ok and res.text == "Hello from mock zai", res.row()
    assert res.raw == zai.calls[0].sent
    assert res.headers["x-ccp-lane"] == "zai"
    assert keys["CLIENT_API_KEY"] not in json.dumps(zai.calls[0].headers)
    # the shim's usage endpoints, fed by the same store, on the admin port
    def store_written():
        usage = httpx.get(f"{front.proc.admin_url}/v1/usage", trust_env=False)
        assert usage.status_code == 200
        return usage.json()["store"]["written"] == 1
    wait_until(store_written, 10, "the mitm's usage store to hold the record")


def test_other_hosts_pass_untouched(make_front, tls_mocks, keys):
    """A host that is not the Anthropic API keeps its URL and the client's own headers: no rerouting,
    no key swap, no record."""
    anthropic, zai = tls_mocks
    front = make_front("mitm")
    other = zai.zai_base_url.replace("127.0.0.1", "localhost")  # same mock, another host name
    res = curl_probe(other, "claude-haiku-4-5", api_key=keys["CLIENT_API_KEY"], via=front.via)
    assert res.ok, res.row()
    [call] = zai.calls
    assert call.headers["x-api-key"] == keys["CLIENT_API_KEY"]  # not swapped for the Z.AI key
    assert "x-ccp-request-id" not in res.headers and front.proc.records() == []


@pytest.mark.parametrize("chain", ["0", "~d localhost"])
def test_filter_chain_chooses_the_flows(make_front, tls_mocks, keys, chain):
    """MITM_FILTER_CHAIN=0 turns the addon off; an expression picks other flows: either way
    api.anthropic.com is not rerouted (offline it cannot be reached: mitmproxy's 502, no record)."""
    anthropic, zai = tls_mocks
    front = make_front("mitm", {"MITM_FILTER_CHAIN": chain})
    res = curl_probe(front.base_url, "claude-haiku-4-5", api_key=keys["CLIENT_API_KEY"],
                     via=front.via)
    assert res.status == 502 and not anthropic.calls and not zai.calls
    assert front.proc.records() == []
    if chain.startswith("~d"):  # the expression's host is routed like api.anthropic.com would be
        res = curl_probe(zai.zai_base_url.replace("127.0.0.1", "localhost"), "claude-haiku-4-5",
                         api_key=keys["CLIENT_API_KEY"], via=front.via)
        assert res.ok and res.headers["x-ccp-lane"] == "zai", res.row()
        assert zai.calls[-1].headers["x-api-key"] == keys["ZAI_API_KEY"]
        assert len(front.proc.records()) == 1


def _ccp(args, env, timeout=60):
    return subprocess.run([sys.executable, "-m", "proxy", *args], env=clean_env(env),
                          cwd=PROJECT_ROOT, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=timeout)


def test_mitm_env_prints_the_shell_side(tmp_path):
    out = _ccp(["mitm", "env", "--port", "8082"], {"CCP_MITM_CONFDIR": str(tmp_path / "ca")})
    assert out.returncode == 0, out.stderr
    ca = tmp_path / "ca" / "mitmproxy-ca-cert.pem"
    assert out.stdout.splitlines() == [
        "export HTTPS_PROXY=http://127.0.0.1:8082", f"export NODE_EXTRA_CA_CERTS={ca}",
        "unset ANTHROPIC_BASE_URL ANTHROPIC_AUTH_TOKEN"]
    assert ca.read_text().startswith("-----BEGIN CERTIFICATE-----")
    undo = _ccp(["mitm", "env", "--unset"], {"CCP_MITM_CONFDIR": str(tmp_path / "ca")})
    assert undo.stdout.strip() == "unset HTTPS_PROXY NODE_EXTRA_CA_CERTS"


def test_bad_filter_chain_is_a_config_error(tmp_path):
    out = _ccp(["mitm", "--port", "0"], {"MITM_FILTER_CHAIN": "~d (", "CCP_MITM_CONFDIR": str(tmp_path)})
    assert out.returncode == 2 and out.stderr.startswith("ConfigError: MITM_FILTER_CHAIN"), out.stderr


def test_repro_through_mitm(tmp_path, claude_bin):
    """`make repro-mitm`: 31 probes through the CLI, curl, httpx and the SDK, all gates."""
    out = _ccp(["repro", "--front", "mitm", "--no-progress"],
               {"CCP_LOGS_DIR": str(tmp_path / "logs"), "CCP_RESULTS_DIR": str(tmp_path / "results")},
               timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "all gates passed" in out.stdout and "PASS long_sse_byte_exact" in out.stdout
    metrics = json.loads((tmp_path / "results" / "METRICS_mitm_repro.json").read_text())
    assert metrics["requests"] == 31 and metrics["run"]["front"] == "mitm"
    assert metrics["completions_by_lane"]["zai"] == 15 and metrics["completions_by_lane"]["anthropic"] == 16
    assert (tmp_path / "results" / "mitm_repro-SUMMARY.md").exists()
