"""When to ask an upstream again: backoff on 429/503, and the fallback lane on failure.

`retry_delay()` is the pure policy (`CCP_ENABLE_BACKOFF`): only 429 and 503 are retried; the wait is
the upstream's own `retry-after-ms` / `Retry-After` (seconds or an HTTP-date) when it gives one,
otherwise 0.5 s · 2^attempt plus up to 25 % jitter. It gives up (None) after
`CCP_BACKOFF_MAX_RETRIES` retries, or when the upstream asks for a wait longer than
`CCP_BACKOFF_MAX_SECONDS` (the 429/503 then goes to the client as it is). `send_with_backoff()` applies
it around `Upstream.send()` and counts the retries for the record's `retries`.

`fallback_decision()` is the pure rule for `CCP_FALLBACK_LANE`: a request that failed before any byte
reached the client is tried once more on the fallback provider, and the record says why.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from email.utils import parsedate_to_datetime

from proxy.config.settings import Settings
from proxy.core.errors import UpstreamError
from proxy.core.routing import LANE_ANTHROPIC
from proxy.upstream.base import StreamIdle, Upstream, UpstreamRequest, UpstreamResponse

RETRY_STATUSES = frozenset({429, 503})
BASE_DELAY = 0.5  # seconds before the first retry when the upstream does not say
JITTER = 0.25  # up to this fraction is added, so that many clients do not retry in step


def retry_after(headers: Iterable[tuple[str, str]], now: float | None = None) -> float | None:
    """Seconds the upstream asked for (`retry-after-ms`, then `Retry-After`), or None."""
    found = {
        k.lower(): v.strip() for k, v in headers if k.lower() in ("retry-after", "retry-after-ms")
    }
    try:
        if "retry-after-ms" in found:
            return max(0.0, float(found["retry-after-ms"]) / 1000.0)
    except ValueError:
        pass
    value = found.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # an HTTP-date is GMT; a date without a zone is taken as such
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def retry_delay(
    status: int,
    headers: Iterable[tuple[str, str]],
    attempt: int,
    settings: Settings,
    *,
    rand: Callable[[], float] = random.random,
    now: float | None = None,
) -> float | None:
    """Seconds to wait before retry number `attempt + 1`, or None to give up and pass the answer on."""
    if status not in RETRY_STATUSES or attempt >= settings.backoff_max_retries:
        return None
    asked = retry_after(headers, now)
    if asked is not None:
        return asked if asked <= settings.backoff_max_seconds else None
    base = BASE_DELAY * 2**attempt
    return min(base * (1.0 + JITTER * rand()), settings.backoff_max_seconds)


async def send_with_backoff(
    upstream: Upstream,
    request: UpstreamRequest,
    settings: Settings,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    on_retry: Callable[[int, float, int], None] | None = None,
) -> tuple[UpstreamResponse, int]:
    """`upstream.send(request)`, again after a 429/503 while the policy allows; (answer, retries).

    Each refused answer is closed before the wait. `on_retry(retries, delay, status)` is called before
    each wait, so a caller can note the count even if a later attempt raises.
    """
    retries = 0
    while True:
        resp = await upstream.send(request)
        delay = (
            retry_delay(resp.status, resp.headers, retries, settings)
            if settings.enable_backoff
            else None
        )
        if delay is None:
            return resp, retries
        resp.close()
        retries += 1
        if on_retry is not None:
            on_retry(retries, delay, resp.status)
        await sleep(delay)


def fallback_decision(
    settings: Settings,
    provider: str,
    lane: str,
    *,
    error: BaseException | None = None,
    status: int | None = None,
    started: bool = False,
) -> str | None:
    """`fallback:<reason>` when this failure should be tried once on `CCP_FALLBACK_LANE`, else None.

    Falls back on an `UpstreamError` / `UpstreamTimeout` raised before the client got anything (an idle
    stream has already answered), or on a 5xx status from a lane other than anthropic. Never from the
    fallback provider itself, so it happens at most once. Reasons: `net`, `timeout`, `upstream_5xx`.
    """
    target = settings.fallback_lane
    if not target or started or target in (provider, lane):
        return None
    if error is not None:
        if isinstance(error, UpstreamError) and not isinstance(error, StreamIdle):
            return f"fallback:{error.err_type}"
        return None
    if status is not None and status >= 500 and lane != LANE_ANTHROPIC:
        return "fallback:upstream_5xx"
    return None
