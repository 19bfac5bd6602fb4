"""The TLS mock: a free port, a CA to trust, h2 by ALPN, every call recorded, a clean stop."""
import socket
import ssl

import pytest

from harness.tls_mock import TlsMock

pytestmark = pytest.mark.quick


async def _hello(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hi"})


def test_serves_h2_with_its_own_ca():
    with TlsMock(_hello) as mock:
        assert mock.base_url == f"https://127.0.0.1:{mock.port}"
        context = ssl.create_default_context(cafile=mock.ca_path)
        context.set_alpn_protocols(["h2", "http/1.1"])
        with socket.create_connection(("127.0.0.1", mock.port), timeout=5) as raw:
            with context.wrap_socket(raw, server_hostname="localhost") as tls:
                assert tls.selected_alpn_protocol() == "h2"
        context.set_alpn_protocols(["http/1.1"])
        with socket.create_connection(("127.0.0.1", mock.port), timeout=5) as raw:
            with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                tls.sendall(b"GET /x HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n")
                answer = b""
                while chunk := tls.recv(4096):
                    answer += chunk
        assert answer.startswith(b"HTTP/1.1 200") and b"\r\nhi\r\n" in answer  # chunked
        assert [(c.http_version, c.method, c.path) for c in mock.calls] == [("1.1", "GET", "/x")]
        assert mock.connections() == 1
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", mock.port), timeout=1).close()


def test_throwaway_certs_gives_a_ca_and_a_leaf_for_loopback(tmp_path):
    from harness.tls_mock import throwaway_certs
    ca, cert, key = throwaway_certs(tmp_path)
    assert (ca, cert, key) == tuple(str(tmp_path / n) for n in ("ca.pem", "cert.pem", "key.pem"))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert, key)  # the leaf and its key belong together
    client = ssl.create_default_context(cafile=ca)
    assert len(client.get_ca_certs()) == 1
