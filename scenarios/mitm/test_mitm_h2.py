"""HTTP/2 in HTTPS_PROXY mode: the model flows go through the shim's own upstream seam, so they speak
what the shim speaks (HTTP/1.1 by default, HTTP/2 to an h2-capable TLS mock with CCP_HTTP2=1, HTTP/1.1
again with MITM_FORCE_H1); the record's `h2` says what was negotiated, as in the shim."""
import pytest

from harness.cli_probe import curl_probe
from harness.shim import HttpsProxy, MitmProcess
from harness.tls_mock import TlsMock, anthropic_app

pytestmark = [pytest.mark.repro_mitm, pytest.mark.repro_py]


@pytest.fixture(scope="module")
def h2_upstream():
    with TlsMock(anthropic_app) as mock:
        yield mock


@pytest.mark.parametrize("env, h2", [({}, False), ({"CCP_HTTP2": "1"}, True),
                                     ({"CCP_HTTP2": "1", "MITM_FORCE_H1": "1"}, False)],
                         ids=["default", "http2", "force_h1"])
def test_mitm_h2_is_what_was_negotiated(tmp_path, h2_upstream, env, h2):
    before = len(h2_upstream.calls)
    with MitmProcess(tmp_path, {"CCP_ANTHROPIC_BASE_URL": h2_upstream.base_url,
                                "CCP_CA_BUNDLE": h2_upstream.ca_path, **env}) as mitm:
        res = curl_probe("https://api.anthropic.com", "claude-sonnet-4-5", stream=True,
                         api_key="client-key", via=HttpsProxy(mitm.url, mitm.ca_cert))
        assert res.ok and res.text == "over h2 we go", res.row()
        [rec] = mitm.wait_for_records(1)
    assert rec["h2"] is h2 and rec["sse"]["complete"] is True
    calls = [c for c in h2_upstream.calls[before:] if c.method == "POST"]
    assert [c.http_version for c in calls] == ["2" if h2 else "1.1"]
