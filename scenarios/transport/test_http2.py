"""HTTP/2 to the upstream by default, HTTP/1.1 with CCP_FORCE_H1 (or MITM_FORCE_H1): the record's
`h2` says what was actually negotiated with a TLS mock that offers both."""
import pytest

from harness.probes import http_probe
from harness.tls_mock import TlsMock, anthropic_app

pytestmark = [pytest.mark.repro_go]


@pytest.fixture(scope="module")
def tls_upstream():
    with TlsMock(anthropic_app) as mock:
        yield mock


@pytest.mark.parametrize("env, h2", [({}, True), ({"CCP_FORCE_H1": "1"}, False), ({"MITM_FORCE_H1": "1"}, False)],
                         ids=["default", "force_h1", "mitm_alias"])
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
    if h2:  # pooled: the three requests share one connection
        assert len({c.client for c in calls}) == 1


def test_plain_http_upstreams_are_never_h2(make_shim, mock_anthropic, mock_zai):
    shim = make_shim()
    res = http_probe(shim.url, "claude-sonnet-4-5", api_key="k")
    assert shim.record_for(res.rid)["h2"] is False
