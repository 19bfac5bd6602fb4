"""The floor: the least an aiohttp relay can do — no routing, no logging, no metrics, no store.

Every POST is sent to `--upstream` + the same path with the same body bytes and the content-type and
credential headers; the answer's status, content-type and body come back, streamed chunk by chunk.
One pooled client session for the process. `ccp`'s costs are judged as ratios against this.

With `--ca PATH` (an https upstream) the session trusts that CA alone and offers `http/1.1` by ALPN:
the bare TLS relay, the floor of the https path.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl

import aiohttp
from aiohttp import web

from harness.bench.procs import run_fast

FORWARDED = ("content-type", "x-api-key", "authorization", "anthropic-version", "x-mock-deltas",
             "x-mock-delay-ms")


def client_context(ca: str) -> ssl.SSLContext:
    """A verifying client context trusting `ca`, offering HTTP/1.1 only."""
    context = ssl.create_default_context(cafile=ca)
    context.set_alpn_protocols(["http/1.1"])
    return context


async def serve(host: str, port: int, upstream: str, ca: str | None = None) -> None:
    connector = aiohttp.TCPConnector(limit=0, ssl=client_context(ca) if ca else True)
    session = aiohttp.ClientSession(connector=connector, auto_decompress=False)

    async def relay(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = {k: request.headers[k] for k in FORWARDED if k in request.headers}
        async with session.post(upstream + request.path, data=body, headers=headers) as up:
            ctype = up.headers.get("content-type", "application/json")
            if not ctype.startswith("text/event-stream"):
                return web.Response(status=up.status, body=await up.read(),
                                    headers={"content-type": ctype})
            out = web.StreamResponse(status=up.status, headers={"content-type": ctype})
            await out.prepare(request)
            async for chunk in up.content.iter_any():
                await out.write(chunk)
            await out.write_eof()
            return out

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/{tail:.*}", relay)
    await listen(app, host, port)


async def listen(app: web.Application, host: str, port: int) -> None:
    """Serve `app`, announce the port on stdout, run until SIGTERM (every bench relay's end)."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=4096)
    await site.start()
    print(json.dumps({"event": "listening", "port": runner.addresses[0][1], "pid": os.getpid()}),
          flush=True)
    await asyncio.Event().wait()  # until SIGTERM


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.bench.floor_relay")
    parser.add_argument("--upstream", required=True, help="base URL, e.g. http://127.0.0.1:9000")
    parser.add_argument("--ca", default=None,
                        help="a PEM CA to trust for an https upstream (and nothing else)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    run_fast(serve(args.host, args.port, args.upstream.rstrip("/"), args.ca))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
