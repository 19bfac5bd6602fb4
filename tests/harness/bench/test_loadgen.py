"""The bench's load generator (harness.bench.loadgen) against a local aiohttp server: the request
budget, the answers that count as whole, the error kinds and the hard cap."""
import asyncio
import socket
from collections import Counter

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from harness.bench.loadgen import LoadResult, LoadSpec, run_load

pytestmark = pytest.mark.quick

HEADERS = {"content-type": "application/json"}
SEEN = web.AppKey("seen", list)


async def _json(request):
    seen = request.app[SEEN]
    seen.append(await request.read())
    return web.json_response({"usage": {"input_tokens": 1}})


async def _no_usage(request):
    return web.json_response({"content": []})


async def _fail(request):
    return web.json_response({"usage": {}}, status=529)


async def _stream(request):
    resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
    await resp.prepare(request)
    await resp.write(b"event: message_start\ndata: {}\n\n")
    if request.query.get("whole"):
        await resp.write(b"event: message_stop\ndata: {}\n\n")
    return resp


async def _hang(request):
    await asyncio.Event().wait()


def _load(path: str, **spec):
    async def main():
        app = web.Application()
        app[SEEN] = []
        for route, handler in (("/json", _json), ("/no-usage", _no_usage), ("/fail", _fail),
                               ("/stream", _stream), ("/hang", _hang)):
            app.router.add_post(route, handler)
        async with TestServer(app) as server:
            url = path if path.startswith("http") else str(server.make_url(path))
            result = await run_load(LoadSpec(url=url, body=b'{"m": 1}', headers=HEADERS, **spec))
            return result, app[SEEN]
    return asyncio.run(main())


def test_the_budget_is_started_exactly_and_each_whole_answer_has_a_latency():
    result, seen = _load("/json", concurrency=4, total=10)
    assert (result.started, result.ok, result.error_count) == (10, 10, 0)
    assert seen == [b'{"m": 1}'] * 10
    assert all(ms > 0 for ms in result.latencies_ms) and result.ttfb_ms == []
    assert result.wall_s > 0


def test_a_whole_stream_counts_with_its_time_to_first_byte():
    result, _ = _load("/stream?whole=1", concurrency=2, total=4, stream=True)
    assert (result.ok, len(result.ttfb_ms), result.error_count) == (4, 4, 0)
    assert all(t <= total for t, total in zip(result.ttfb_ms, result.latencies_ms, strict=True))


@pytest.mark.parametrize("path, stream, kind", [
    ("/no-usage", False, "incomplete"), ("/stream", True, "incomplete"), ("/fail", False, "http_529"),
])
def test_answers_that_are_not_whole_or_not_200_are_errors_by_kind(path, stream, kind):
    result, _ = _load(path, concurrency=2, total=3, stream=stream)
    assert result.ok == 0 and result.errors == Counter({kind: 3})


def test_an_unreachable_target_is_counted_by_the_clients_error_type():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result, _ = _load(f"http://127.0.0.1:{port}/v1/messages", concurrency=1, total=2)
    assert result.ok == 0 and result.errors == Counter({"ClientConnectorError": 2})


def test_requests_still_running_at_the_cap_are_cancelled_and_counted():
    result, _ = _load("/hang", concurrency=3, total=50, cap=0.3)
    assert result.started == 3 and result.errors == Counter({"cap": 3})
    assert 0.3 <= result.wall_s < 5


def test_a_duration_keeps_starting_requests_until_it_has_passed():
    result, _ = _load("/json", concurrency=2, duration=0.2)
    assert result.ok == result.started > 2 and result.error_count == 0
    assert result.wall_s >= 0.2


def test_a_result_counts_ok_answers_and_errors():
    result = LoadResult(latencies_ms=[1.0, 2.0], errors=Counter({"cap": 2, "http_500": 1}))
    assert (result.ok, result.error_count) == (2, 3)


def test_with_a_ca_the_load_generator_speaks_tls_to_an_https_url(tmp_path):
    import ssl

    from harness.tls_mock import throwaway_certs
    ca, cert, key = throwaway_certs(tmp_path)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    server_ctx.set_alpn_protocols(["h2", "http/1.1"])
    alpn = []

    async def _tls_json(request):
        alpn.append(request.transport.get_extra_info("ssl_object").selected_alpn_protocol())
        return await _json(request)

    async def main():
        app = web.Application()
        app[SEEN] = []
        app.router.add_post("/json", _tls_json)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ctx)
        await site.start()
        try:
            port = runner.addresses[0][1]
            return await run_load(LoadSpec(url=f"https://127.0.0.1:{port}/json", body=b"{}",
                                           headers=HEADERS, concurrency=2, total=6, ca=ca))
        finally:
            await runner.cleanup()

    result = asyncio.run(main())
    assert (result.ok, result.error_count) == (6, 0)
    assert set(alpn) == {"http/1.1"} and len(alpn) == 6
