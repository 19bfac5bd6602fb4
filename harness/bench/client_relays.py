"""Candidate upstream clients, each as a bare relay: the floor relay with its HTTP client swapped.

`python -m harness.bench.client_relays --client NAME --upstream https://127.0.0.1:P --ca ca.pem`
serves what `harness.bench.floor_relay` serves (POST any path → the same path upstream, body bytes,
content-type and credential headers; the answer's status, content-type and body, streamed chunk by
chunk) and sends it with the client NAME names. The aiohttp server in front is the same for every
candidate, so the CPU and latency differences between two runs are the clients'. These are what
`docs/upstream-clients.md` compares (`ccp bench --candidates`): a client that is not installed
announces `{"event": "missing", ...}` and exits 3, and the bench reports it as skipped.

| NAME | library | protocol |
|---|---|---|
| aiohttp | aiohttp (C parser), TLS by the stdlib ssl module | HTTP/1.1 |
| httpx-h1, httpx-h2 | httpx + httpcore (+ h2) | HTTP/1.1, HTTP/2 |
| curl-h1, curl-h2 | curl_cffi (libcurl, nghttp2) | HTTP/1.1, HTTP/2 |
| niquests-h2 | niquests (urllib3-future) | HTTP/2 |
| rnet-h1, rnet-h2 | rnet (Rust: hyper, BoringSSL) | HTTP/1.1, HTTP/2 |
"""
from __future__ import annotations

import argparse
import json
import ssl
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import NamedTuple

from aiohttp import web

from harness.bench.floor_relay import FORWARDED, listen
from harness.bench.procs import run_fast

# send(url, body, headers) -> (status, content-type, body chunks)
Send = Callable[[str, bytes, dict], Awaitable[tuple[int, str, AsyncIterator[bytes]]]]


class Candidate(NamedTuple):
    send: Send
    close: Callable[[], Awaitable[object]]  # closes the client's connections


CLIENTS = ("aiohttp", "httpx-h1", "httpx-h2", "curl-h1", "curl-h2", "niquests-h2", "rnet-h1",
           "rnet-h2")


def _aiohttp(ca: str | None) -> Candidate:
    import aiohttp

    context = ssl.create_default_context(cafile=ca) if ca else None
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, ssl=context),
                                    auto_decompress=False)

    async def send(url: str, body: bytes, headers: dict):
        resp = await session.post(url, data=body, headers=headers)

        async def chunks():
            try:
                async for chunk in resp.content.iter_any():
                    yield chunk
            finally:
                resp.release()
        return resp.status, resp.headers.get("content-type", ""), chunks()
    return Candidate(send, session.close)


def _httpx(ca: str | None, http2: bool) -> Candidate:
    import httpx

    verify = ssl.create_default_context(cafile=ca) if ca else True
    client = httpx.AsyncClient(http1=not http2, http2=http2, verify=verify, timeout=60,
                               limits=httpx.Limits(max_connections=None,
                                                   max_keepalive_connections=1000))

    async def send(url: str, body: bytes, headers: dict):
        resp = await client.send(client.build_request("POST", url, content=body, headers=headers),
                                 stream=True)

        async def chunks():
            try:
                async for chunk in resp.aiter_raw():
                    yield chunk
            finally:
                await resp.aclose()
        return resp.status_code, resp.headers.get("content-type", ""), chunks()
    return Candidate(send, client.aclose)


def _curl(ca: str | None, http2: bool) -> Candidate:
    from curl_cffi import CurlHttpVersion
    from curl_cffi.requests import AsyncSession

    session = AsyncSession(max_clients=1024, verify=ca or True, timeout=60,
                           http_version=CurlHttpVersion.V2TLS if http2 else CurlHttpVersion.V1_1)

    async def send(url: str, body: bytes, headers: dict):
        resp = await session.post(url, data=body, headers=headers, stream=True)

        async def chunks():
            try:
                async for chunk in resp.aiter_content():
                    yield chunk
            finally:
                await resp.aclose()
        return resp.status_code, resp.headers.get("content-type", ""), chunks()
    return Candidate(send, session.close)


def _niquests(ca: str | None) -> Candidate:
    import niquests

    session = niquests.AsyncSession(disable_http3=True, pool_maxsize=1000)  # (multiplexed=True
    # answers lazily: a status is readable only after session.gather(), no use to a relay)
    verify = ca or True

    async def send(url: str, body: bytes, headers: dict):
        resp = await session.post(url, data=body, headers=headers, verify=verify, stream=True)

        async def chunks():
            try:
                async for chunk in await resp.iter_raw():
                    yield chunk
            finally:
                await resp.close()
        return resp.status_code, resp.headers.get("content-type", ""), chunks()
    return Candidate(send, session.close)


def _rnet(ca: str | None, http2: bool) -> Candidate:
    from pathlib import Path

    import rnet

    client = rnet.Client(verify=Path(ca) if ca else True, http2_only=http2 or None,
                         http1_only=(not http2) or None, pool_max_idle_per_host=1000)

    async def send(url: str, body: bytes, headers: dict):
        resp = await client.post(url, body=body, headers=headers)

        async def chunks():
            try:
                async with resp.stream() as streamer:
                    async for chunk in streamer:
                        yield chunk
            finally:
                await resp.close()
        ctype = resp.headers.get("content-type")
        ctype = ctype.decode() if isinstance(ctype, bytes) else (ctype or "")
        return resp.status, ctype, chunks()

    async def close() -> None:
        pass  # (rnet's pool goes with the client object)
    return Candidate(send, close)


def make_candidate(name: str, ca: str | None) -> Candidate:
    """Candidate `name`'s send and close (made in the running loop); ImportError when its library
    is not installed."""
    makers: dict[str, Callable[[], Candidate]] = {
        "aiohttp": lambda: _aiohttp(ca),
        "httpx-h1": lambda: _httpx(ca, http2=False),
        "httpx-h2": lambda: _httpx(ca, http2=True),
        "curl-h1": lambda: _curl(ca, http2=False),
        "curl-h2": lambda: _curl(ca, http2=True),
        "niquests-h2": lambda: _niquests(ca),
        "rnet-h1": lambda: _rnet(ca, http2=False),
        "rnet-h2": lambda: _rnet(ca, http2=True),
    }
    if name not in makers:
        raise ValueError(f"unknown client {name!r}; one of {', '.join(CLIENTS)}")
    return makers[name]()


def make_app(upstream: str, send: Send) -> web.Application:
    """The relay: every POST to `upstream` + its path through `send`."""

    async def relay(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = {k: request.headers[k] for k in FORWARDED if k in request.headers}
        status, ctype, chunks = await send(upstream + request.path, body, headers)
        ctype = ctype or "application/json"
        if not ctype.startswith("text/event-stream"):
            whole = b"".join([chunk async for chunk in chunks])
            return web.Response(status=status, body=whole, headers={"content-type": ctype})
        out = web.StreamResponse(status=status, headers={"content-type": ctype})
        await out.prepare(request)
        async for chunk in chunks:
            await out.write(chunk)
        await out.write_eof()
        return out

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/{tail:.*}", relay)
    return app


async def serve(host: str, port: int, upstream: str, send: Send) -> None:
    await listen(make_app(upstream, send), host, port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.bench.client_relays")
    parser.add_argument("--client", required=True, choices=CLIENTS)
    parser.add_argument("--upstream", required=True, help="base URL, e.g. https://127.0.0.1:9443")
    parser.add_argument("--ca", help="a PEM CA bundle to trust (the mock's throwaway CA)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)

    async def start() -> None:  # (clients that bind to the running loop are made inside it)
        try:
            candidate = make_candidate(args.client, args.ca)
        except ImportError as exc:
            print(json.dumps({"event": "missing", "client": args.client, "error": str(exc)}),
                  flush=True)
            sys.exit(3)
        await serve(args.host, args.port, args.upstream.rstrip("/"), candidate.send)

    run_fast(start())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
