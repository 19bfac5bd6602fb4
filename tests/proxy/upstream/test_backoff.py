"""Backoff on 429/503 and the fallback-lane rule, with a fake clock and a fake sleep."""
import asyncio
from email.utils import formatdate

import pytest

from proxy.config.settings import Settings
from proxy.core.errors import UpstreamError, UpstreamTimeout
from proxy.upstream.backoff import (
    fallback_decision,
    retry_after,
    retry_delay,
    send_with_backoff,
)
from proxy.upstream.base import StreamIdle, UpstreamRequest

pytestmark = pytest.mark.quick

NOW = 1_700_000_000.0
ON = Settings(enable_backoff=True)


def _delay(status, headers=(), attempt=0, settings=ON):
    return retry_delay(status, list(headers), attempt, settings, rand=lambda: 0.0, now=NOW)


def test_retry_after_seconds_date_and_ms():
    assert retry_after([("Retry-After", "3")]) == 3.0
    assert retry_after([("retry-after", formatdate(NOW + 7, usegmt=True))], now=NOW) == 7.0
    assert retry_after([("retry-after", formatdate(NOW - 7, usegmt=True))], now=NOW) == 0.0
    assert retry_after([("retry-after-ms", "250"), ("retry-after", "3")]) == 0.25
    assert retry_after([("retry-after", "soon")]) is None and retry_after([]) is None


def test_only_429_and_503_are_retried():
    assert _delay(429, [("retry-after", "2")]) == 2.0
    assert _delay(503) == 0.5
    for status in (200, 400, 500, 502, 529):
        assert _delay(status, [("retry-after", "1")]) is None


def test_exponential_with_jitter_and_cap():
    assert [_delay(503, attempt=n, settings=Settings(backoff_max_retries=9)) for n in range(3)] \
        == [0.5, 1.0, 2.0]
    top = retry_delay(503, [], 0, ON, rand=lambda: 1.0)
    assert top == pytest.approx(0.625)  # 25 % jitter at most
    assert _delay(503, attempt=6, settings=Settings(backoff_max_retries=9,
                                                    backoff_max_seconds=5.0)) == 5.0


def test_gives_up_past_the_limits():
    assert _delay(429, attempt=2) is None  # two retries already
    assert _delay(429, [("retry-after", "11")]) is None  # longer than the longest wait
    assert _delay(429, [("retry-after", "10")]) == 10.0


class _Resp:
    def __init__(self, status, headers=()):
        self.status, self.headers, self.h2, self.closed = status, list(headers), False, False

    def close(self):
        self.closed = True


class _Upstream:
    def __init__(self, *answers):
        self.answers, self.sent = list(answers), 0

    async def send(self, request):
        self.sent += 1
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer


REQ = UpstreamRequest("POST", "https://up.example/v1/messages", {}, b"{}", False)


def _send(upstream, settings=ON, **kw):
    slept = []

    async def sleep(seconds):
        slept.append(seconds)

    resp, retries = asyncio.run(send_with_backoff(upstream, REQ, settings, sleep=sleep, **kw))
    return resp, retries, slept


def test_two_retries_are_counted_and_refused_answers_closed():
    refused = [_Resp(429, [("retry-after", "1")]), _Resp(503, [("retry-after", "2")])]
    noted = []
    resp, retries, slept = _send(_Upstream(*refused, _Resp(200)),
                                 on_retry=lambda n, d, s: noted.append((n, d, s)))
    assert (resp.status, retries, slept) == (200, 2, [1.0, 2.0])
    assert all(r.closed for r in refused) and not resp.closed
    assert noted == [(1, 1.0, 429), (2, 2.0, 503)]


def test_the_last_refusal_is_passed_on():
    upstream = _Upstream(*[_Resp(429, [("retry-after", "0")]) for _ in range(3)])
    resp, retries, slept = _send(upstream)
    assert (resp.status, retries, slept, upstream.sent) == (429, 2, [0.0, 0.0], 3)
    assert not resp.closed


def test_disabled_or_not_retryable_means_one_send():
    assert _send(_Upstream(_Resp(429)), settings=Settings())[1:] == (0, [])
    assert _send(_Upstream(_Resp(500)))[1:] == (0, [])
    assert _send(_Upstream(_Resp(429, [("retry-after", "60")])))[1:] == (0, [])


def test_errors_propagate():
    with pytest.raises(UpstreamError):
        _send(_Upstream(_Resp(503), UpstreamError("cannot reach up.example")))


FB = Settings(fallback_lane="anthropic")


@pytest.mark.parametrize("kw, expected", [
    ({"error": UpstreamError("x")}, "fallback:net"),
    ({"error": UpstreamTimeout("x")}, "fallback:timeout"),
    ({"status": 502}, "fallback:upstream_5xx"),
    ({"status": 429}, None),
    ({"status": 200}, None),
    ({"error": StreamIdle("x")}, None),
    ({"error": ValueError("x")}, None),
    ({"error": UpstreamError("x"), "started": True}, None),
])
def test_fallback_decision(kw, expected):
    assert fallback_decision(FB, "zai", "zai", **kw) == expected


def test_no_fallback_from_itself_or_when_unset():
    assert fallback_decision(FB, "anthropic", "anthropic", error=UpstreamError("x")) is None
    assert fallback_decision(FB, "zai", "anthropic", status=503) is None  # not from the anthropic lane
    assert fallback_decision(Settings(), "zai", "zai", error=UpstreamError("x")) is None
