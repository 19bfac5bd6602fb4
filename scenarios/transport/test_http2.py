"""HTTP/1.1 to https upstreams by default (the shim's own client: docs/upstream-clients.md), HTTP/2 with
CCP_HTTP2=1, HTTP/1.1 again when CCP_FORCE_H1 (or MITM_FORCE_H1) says so: the record's `h2` says what
was actually negotiated with a TLS mock that offers both."""
import pytest

from harness.probes import http_probe
from harness.tls_mock import TlsMock, anthropic_app

pytestmark = [pytest.mark.repro_go]


@pytest.fixture(scope="module")
def tls_upstream():
    with TlsMock(anthropic_app) as mock:
        yield mock


@pytest.mark.parametrize("env, h2", [({}, False), ({"CCP_HTTP2": "1"}, True),
                                     ({"CCP_HTTP2": "1", "CCP_FORCE_H1": "1"}, False),
                                     ({"CCP_HTTP2": "1", "MITM_FORCE_H1": "1"}, False)],
                         ids=["default", "http2", "force_h1", "mitm_alias"])
def test_h2_is_what_was_negotiated(make_shim, mock_zai, tls_upstream, env, h2):
    before = len(tls_upstream.calls)
    shim = make_shim({"CCP_ANTHROPIC_BASE_URL": tls_upstream.base_url, "CCP_CA_BUNDLE": tls_upstream.ca_path,
                      **env})
    results = [http_probe(shim.url, "claude-sonnet-4-5", stream=stream, api_key="k") for stream in (False, True, True)]
    assert all(r.ok for r in results), [r.row() for r in results]
    assert results[1].text == "over h2 we go"
    recs = [shim.record_for(r.rid) for r in results]
    assert {r["h2"] for r in recs} == {h2}
    assert recs[1]["sse"]["complete"] is True
    calls = [c for c in tls_upstream.calls[before:] if c.method == "POST"]
    assert {c.http_version for c in calls} == {"2" if h2 else "1.1"}
    assert len({c.client for c in calls}) == 1  # pooled: the three requests share one connection


def test_plain_http_upstreams_are_never_h2(make_shim, mock_anthropic, mock_zai):
    shim = make_shim()
    res = http_probe(shim.url, "claude-sonnet-4-5", api_key="k")
    assert shim.record_for(res.rid)["h2"] is False


@pytest.mark.parametrize("env", [{}, {"CCP_HTTP2": "1"}, {"CCP_UPSTREAM_CLIENT": "aiohttp"}],
                         ids=["default", "http2", "aiohttp"])
def test_the_upstream_clients_log_nothing_per_request(make_shim, mock_zai, tls_upstream, env):
    shim = make_shim({"CCP_ANTHROPIC_BASE_URL": tls_upstream.base_url, "CCP_CA_BUNDLE": tls_upstream.ca_path,
                      **env})
    results = [http_probe(shim.url, "claude-sonnet-4-5", stream=i % 2 == 1, api_key="k") for i in range(6)]
    assert all(r.ok for r in results), [r.row() for r in results]
    shim.wait_for_records(6)
    lines = shim.stderr_path.read_text(errors="replace").splitlines()
    per_request = [line for line in lines if "/v1/messages" in line or "HTTP Request" in line]
    assert per_request == [], per_request[:3]


@pytest.mark.parametrize("env", [{}, {"CCP_HTTP2": "1"}, {"CCP_UPSTREAM_CLIENT": "aiohttp"}],
                         ids=["default", "http2", "aiohttp"])
def test_readiness_and_traffic_trust_the_same_certificates(make_shim, mock_zai, tls_upstream, env):
    """A CA the shim was given (CCP_CA_BUNDLE) is trusted by /readyz and by requests alike; without
    it both refuse the mock's certificate. The probe goes through the same client as the traffic."""
    base = {"CCP_ANTHROPIC_BASE_URL": tls_upstream.base_url, **env}
    for trusted in (True, False):
        shim = make_shim({**base, "CCP_CA_BUNDLE": tls_upstream.ca_path} if trusted else base,
                         wait="/healthz")
        ready = requests_get_json(shim.url + "/readyz")
        res = http_probe(shim.url, "claude-sonnet-4-5", api_key="k")
        anthropic = ready["providers"]["anthropic"]
        assert anthropic["reachable"] is trusted and res.ok is trusted, (anthropic, res.row())
        if not trusted:
            assert res.status == 502 and "certificate" in (anthropic["reason"] + res.raw.decode()).lower()


def requests_get_json(url: str) -> dict:
    import json
    import urllib.error
    import urllib.request
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 - loopback
            return json.loads(resp.read())
    except urllib.error.HTTPError as err:  # 503 when a required lane is unreachable
        with err:
            return json.loads(err.read())
