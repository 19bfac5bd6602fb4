"""proxy.upstream.tls: the one TLS trust for upstreams (certifi's roots plus CCP_CA_BUNDLE, added),
shared per bundle and protocol offer, proven by in-memory handshakes against a test CA's server."""
import ssl

import certifi
import pytest
import trustme

from proxy.config.settings import Settings
from proxy.upstream.tls import ca_files, trust

pytestmark = pytest.mark.quick


def _certifi_roots() -> int:
    return ssl.create_default_context(cafile=certifi.where()).cert_store_stats()["x509_ca"]


def _handshake(client: ssl.SSLContext, server: ssl.SSLContext, host: str = "localhost") -> str | None:
    """Both ends of a TLS handshake in memory; the protocol agreed by ALPN."""
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    c = client.wrap_bio(c_in, c_out, server_hostname=host)
    s = server.wrap_bio(s_in, s_out, server_side=True)
    done = {"c": False, "s": False}
    for _ in range(20):
        for name, end in (("c", c), ("s", s)):
            if not done[name]:
                try:
                    end.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            return c.selected_alpn_protocol()
    raise AssertionError("handshake did not finish")


@pytest.fixture(scope="module")
def test_ca(tmp_path_factory):
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server)
    server.set_alpn_protocols(["h2", "http/1.1"])
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path), server


def test_without_a_bundle_the_trust_is_certifis_roots_verified():
    context = trust(Settings())
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.cert_store_stats()["x509_ca"] == _certifi_roots()
    assert ca_files(Settings()) == (certifi.where(),)


def test_a_bundle_is_added_to_certifis_roots_and_trusted_in_a_handshake(test_ca):
    path, server = test_ca
    context = trust(Settings(ca_bundle=path))
    assert context.cert_store_stats()["x509_ca"] == _certifi_roots() + 1  # added, not replacing
    assert ca_files(Settings(ca_bundle=path)) == (certifi.where(), path)
    assert _handshake(context, server) == "http/1.1"
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(trust(Settings()), server)  # the test CA is no public root


def test_one_context_per_bundle_and_offer_and_h2_offered_only_when_asked(test_ca):
    path, server = test_ca
    settings = Settings(ca_bundle=path)
    assert trust(settings) is trust(Settings(ca_bundle=path)) is not trust(Settings())
    h2 = trust(settings, http2=True)
    assert h2 is trust(settings, http2=True) is not trust(settings)
    assert _handshake(h2, server) == "h2"
    assert _handshake(trust(settings), server) == "http/1.1"


def test_a_bundle_that_is_no_pem_or_is_missing_raises(tmp_path):
    not_pem = tmp_path / "ca.pem"
    not_pem.write_text("not a certificate\n")
    with pytest.raises(ssl.SSLError):
        trust(Settings(ca_bundle=str(not_pem)))
    with pytest.raises(OSError):
        trust(Settings(ca_bundle=str(tmp_path / "missing.pem")))
