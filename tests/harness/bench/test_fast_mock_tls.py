"""The fast mock's TLS listener (harness.bench.fast_mock_tls) on 127.0.0.1 with a throwaway CA: h2
chosen by ALPN when offered, HTTP/1.1 otherwise, each handshake and each call counted by wire, and
answers larger than the peer's flow-control windows sent whole."""
import asyncio
import json
import ssl

import httpx
import pytest

from harness.bench.fast_mock import MockState
from harness.bench.fast_mock_tls import ALPN, TlsConnection, server_context
from harness.tls_mock import throwaway_certs

pytestmark = pytest.mark.quick


async def _serve(state: MockState, tmp_path):
    ca, cert, key = throwaway_certs(tmp_path)
    server = await asyncio.get_running_loop().create_server(
        lambda: TlsConnection(state), "127.0.0.1", 0, ssl=server_context(cert, key))
    return server, ca, f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}"


def test_the_context_offers_h2_first(tmp_path):
    _, cert, key = throwaway_certs(tmp_path)
    assert ALPN == ["h2", "http/1.1"] and server_context(cert, key).verify_mode == ssl.CERT_NONE


def test_h2_and_http11_by_alpn_with_handshakes_and_calls_counted(tmp_path):
    state = MockState()

    async def main():
        server, ca, url = await _serve(state, tmp_path)
        context = ssl.create_default_context(cafile=ca)
        try:
            async with httpx.AsyncClient(http2=True, verify=context) as h2c:
                big = json.dumps({"model": "m", "stream": True, "pad": "x" * 120_000}).encode()
                replies = await asyncio.gather(*[h2c.post(url + "/v1/messages", content=big)
                                                 for _ in range(5)])
                # 3000 deltas: an answer far past the 64 KB windows, sent as they open
                long = await h2c.post(url + "/v1/messages", content=b'{"model":"m","stream":true}',
                                      headers={"x-mock-deltas": "3000"})
                drip = await h2c.post(url + "/v1/messages", content=b'{"model":"m","stream":true}',
                                      headers={"x-mock-deltas": "3", "x-mock-delay-ms": "1"})
                plain = await h2c.post(url + "/v1/messages", content=b'{"model":"m"}')
                head = await h2c.head(url + "/")
            async with httpx.AsyncClient(http2=False, verify=context) as h1c:
                h1 = await h1c.post(url + "/v1/messages", content=b'{"model":"m"}')
        finally:
            server.close()
            await server.wait_closed()
        return replies, long, drip, plain, head, h1

    replies, long, drip, plain, head, h1 = asyncio.run(main())
    for r in (*replies, long, drip):
        assert (r.http_version, r.status_code) == ("HTTP/2", 200)
        assert r.headers["content-type"] == "text/event-stream" and b"message_stop" in r.content
    assert long.content.count(b"text_delta") == 3000 and len(long.content) > 256 * 1024
    assert drip.content.count(b"text_delta") == 3
    assert plain.http_version == "HTTP/2" and json.loads(plain.content)["type"] == "message"
    assert int(plain.headers["content-length"]) == len(plain.content)
    assert (head.http_version, head.status_code) == ("HTTP/2", 200)
    assert (h1.http_version, h1.status_code) == ("HTTP/1.1", 200) and b'"usage"' in h1.content
    counts = state.counts()
    assert counts["handshakes"] == 2  # one HTTP/2 connection for every stream, one HTTP/1.1
    assert (counts["calls"], counts["tls_calls"], counts["h2_calls"]) == (9, 9, 8)
    assert counts["by_kind"] == {"h2": 8, "h1-tls": 1}


def test_a_client_offering_no_alpn_gets_http11(tmp_path):
    state = MockState()

    async def main():
        server, ca, url = await _serve(state, tmp_path)
        port = int(url.rsplit(":", 1)[1])
        try:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=ssl.create_default_context(cafile=ca),
                server_hostname="127.0.0.1")
            body = b'{"model":"m"}'
            writer.write(b"POST /v1/messages HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n\r\n%s"
                         % (len(body), body))
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.split(b"content-length: ")[1].split(b"\r\n")[0])
            answer = await reader.readexactly(length)
            writer.close()
            await writer.wait_closed()
        finally:
            server.close()
            await server.wait_closed()
        return head, answer

    head, answer = asyncio.run(main())
    assert head.startswith(b"HTTP/1.1 200") and b'"usage"' in answer
    assert state.counts()["by_kind"] == {"h1-tls": 1} and state.handshakes == 1


@pytest.mark.parametrize("window, stream_window, connection_window", [
    (None, 1 << 20, 16 << 20),  # the bench's: bodies of 64–120 KB never wait on flow control
    (65535, 65535, 65535),  # the RFC's defaults, both left as they are
])
def test_the_h2_windows_it_advertises(tmp_path, window, stream_window, connection_window):
    import h2.config
    import h2.connection
    import h2.events

    state = MockState()

    async def main():
        ca, cert, key = throwaway_certs(tmp_path)
        factory = (lambda: TlsConnection(state)) if window is None else (
            lambda: TlsConnection(state, window))
        server = await asyncio.get_running_loop().create_server(
            factory, "127.0.0.1", 0, ssl=server_context(cert, key))
        context = ssl.create_default_context(cafile=ca)
        context.set_alpn_protocols(["h2"])
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", server.sockets[0].getsockname()[1], ssl=context, server_hostname="127.0.0.1")
        client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        client.initiate_connection()
        writer.write(client.data_to_send())
        settled = False
        try:
            for _ in range(20):  # SETTINGS, then (when raised) the connection's WINDOW_UPDATE
                events = client.receive_data(await asyncio.wait_for(reader.read(65536), 5))
                settled = settled or any(isinstance(e, h2.events.RemoteSettingsChanged) for e in events)
                if settled and client.outbound_flow_control_window == connection_window:
                    break
        finally:
            writer.close()
            await writer.wait_closed()
            server.close()
            await server.wait_closed()
        return client

    client = asyncio.run(main())
    assert client.remote_settings.initial_window_size == stream_window
    assert client.remote_settings.max_concurrent_streams == 100
    assert client.outbound_flow_control_window == connection_window
    assert state.handshakes == 1
