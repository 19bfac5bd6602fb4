"""The load generator: a fixed number of clients, a request budget and a hard time cap.

`run_load(spec)` starts `spec.concurrency` client loops on one pooled aiohttp session. Each loop
sends the same request until `spec.total` requests were started or `spec.duration` seconds passed;
whatever is still running at `spec.cap` seconds is cancelled and counted as an error (`cap`), so a
target that stalls cannot stall the bench. It records, per request, the latency (send → last byte),
for streams the time to first body byte, and the error kind if any. A request is an error unless the
status is 200 and the answer is whole (`message_stop` / `[DONE]` seen for a stream, `"usage"` in a
JSON body). With `spec.ca` an https URL is trusted on that CA (aiohttp speaks HTTP/1.1 only):
`direct-tls`, the load generator straight to the mock's TLS port.
"""
from __future__ import annotations

import asyncio
import ssl
import time
from collections import Counter
from dataclasses import dataclass, field

import aiohttp

STREAM_ENDS = (b"message_stop", b"[DONE]")


@dataclass(frozen=True)
class LoadSpec:
    url: str
    body: bytes
    headers: dict
    concurrency: int
    stream: bool = False
    total: int | None = None  # requests to start (None: until `duration`)
    duration: float | None = None  # seconds to keep starting requests
    cap: float = 60.0  # hard wall-clock cap for the whole run
    timeout: float = 30.0  # one request
    ca: str | None = None  # an https URL's CA to trust (the client then speaks HTTP/1.1 over TLS)


@dataclass
class LoadResult:
    latencies_ms: list[float] = field(default_factory=list)
    ttfb_ms: list[float] = field(default_factory=list)
    errors: Counter = field(default_factory=Counter)
    started: int = 0
    wall_s: float = 0.0

    @property
    def ok(self) -> int:
        return len(self.latencies_ms)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


async def _one(session: aiohttp.ClientSession, spec: LoadSpec, out: LoadResult) -> None:
    t0 = time.perf_counter()
    first = None
    try:
        async with session.post(spec.url, data=spec.body, headers=spec.headers) as resp:
            if spec.stream:
                tail = b""
                async for chunk in resp.content.iter_any():
                    if first is None:
                        first = time.perf_counter()
                    tail = (tail + chunk)[-64:]
                whole = any(end in tail for end in STREAM_ENDS)
            else:
                data = await resp.read()
                first = time.perf_counter()
                whole = b'"usage"' in data
            if resp.status != 200:
                out.errors[f"http_{resp.status}"] += 1
                return
            if not whole:
                out.errors["incomplete"] += 1
                return
    except asyncio.CancelledError:
        out.errors["cap"] += 1
        raise
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        out.errors[type(exc).__name__] += 1
        return
    end = time.perf_counter()
    out.latencies_ms.append((end - t0) * 1000.0)
    if spec.stream and first is not None:
        out.ttfb_ms.append((first - t0) * 1000.0)


async def run_load(spec: LoadSpec) -> LoadResult:
    """Drive `spec` against its URL; always returns within about `spec.cap` seconds."""
    out = LoadResult()
    tls = True
    if spec.ca:
        tls = ssl.create_default_context(cafile=spec.ca)
        tls.set_alpn_protocols(["http/1.1"])
    connector = aiohttp.TCPConnector(limit=0, force_close=False, ssl=tls)
    timeout = aiohttp.ClientTimeout(total=spec.timeout)
    t_start = time.perf_counter()
    stop_at = t_start + spec.duration if spec.duration else None

    def more() -> bool:
        if spec.total is not None and out.started >= spec.total:
            return False
        return stop_at is None or time.perf_counter() < stop_at

    async def client(session: aiohttp.ClientSession) -> None:
        while more():
            out.started += 1
            await _one(session, spec, out)

    async with aiohttp.ClientSession(connector=connector, timeout=timeout,
                                     auto_decompress=False) as session:
        tasks = [asyncio.ensure_future(client(session)) for _ in range(spec.concurrency)]
        _done, pending = await asyncio.wait(tasks, timeout=spec.cap)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=5.0)
    out.wall_s = time.perf_counter() - t_start
    return out
