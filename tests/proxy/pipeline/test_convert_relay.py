"""Converted relays through the upstream seam (a fake upstream response, a real aiohttp server)."""
import asyncio
import json

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from proxy.core.convert import (
    OpenAIToAnthropicStream,
    openai_error_to_anthropic,
    openai_to_anthropic_response,
)
from proxy.core.errors import UpstreamError
from proxy.pipeline.convert_relay import (
    kept_headers,
    relay_converted_body,
    relay_converted_stream,
)

pytestmark = pytest.mark.quick

CHUNKS = [b'data: {"id":"c1","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}\n\n',
          b'data: {"id":"c1","choices":[{"index":0,"delta":{"content":"Hel"}}]}\n\n',
          b'data: {"id":"c1","choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":"stop"}]}\n\n',
          b'data: {"id":"c1","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2}}\n\n',
          b"data: [DONE]\n\n"]


class Fake:
    def __init__(self, status, chunks, fail_after=None):
        self.status, self.headers, self.h2 = status, [("request-id", "r1"), ("server", "x")], False
        self._chunks, self._fail_after = chunks, fail_after

    @property
    def is_sse(self):
        return True

    async def chunks(self):
        for i, c in enumerate(self._chunks):
            if i == self._fail_after:
                raise UpstreamError("reset")
            yield c

    async def read(self):
        return b"".join(self._chunks)

    def release(self):
        pass

    def close(self):
        pass


def _serve(handler_body):
    async def main():
        app = web.Application()
        app.router.add_post("/", handler_body)
        async with TestClient(TestServer(app)) as client:
            resp = await client.post("/")
            return resp.status, await resp.read()
    return asyncio.run(main())


def _rec():
    return {"ttfb_ms": None, "err_type": None, "reason": None, "bytes_out": 0,
            "in_tokens": None, "out_tokens": None, "cache_read_tokens": None, "cache_creation_tokens": None}


@pytest.mark.parametrize("fail_after", [None, 2])
def test_stream_is_converted_and_always_ends_cleanly(fail_after):
    rec, timing = _rec(), {"t0": 0.0, "upstream_done": None}

    async def handler(request):
        return await relay_converted_stream(request, Fake(200, CHUNKS, fail_after), [], rec, timing,
                                            OpenAIToAnthropicStream("m"), True)

    status, body = _serve(handler)
    events = [line[7:] for line in body.decode().splitlines() if line.startswith("event: ")]
    assert status == 200 and events[0] == "message_start"
    if fail_after is None:
        assert events[-1] == "message_stop" and rec["sse"]["complete"] and rec["out_tokens"] == 2
        assert rec["reason"] == "streaming"
    else:
        assert events[-1] == "error" and rec["err_type"] == "net" and rec["reason"] == "upstream_reset"
    assert timing["downstream"]["events"] == body.decode()


def test_body_and_error_conversion():
    rec, timing = _rec(), {"t0": 0.0, "upstream_done": None}
    ok = json.dumps({"id": "c1", "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"},
                                              "finish_reason": "stop"}],
                     "usage": {"prompt_tokens": 3, "completion_tokens": 1}}).encode()

    async def handler(request):
        return await relay_converted_body(Fake(200, [ok]), [], rec, timing,
                                          lambda b: openai_to_anthropic_response(b, "m"),
                                          openai_error_to_anthropic, lambda _up, m: {"in_tokens": 3})

    status, body = _serve(handler)
    assert status == 200 and json.loads(body)["content"][0]["text"] == "hi" and rec["in_tokens"] == 3

    async def failing(request):
        return await relay_converted_body(Fake(429, [b'{"error":{"message":"slow down"}}']), [], rec, timing,
                                          lambda b: b, openai_error_to_anthropic, lambda _up, m: {})

    status, body = _serve(failing)
    assert status == 429 and json.loads(body)["error"] == {"type": "rate_limit_error", "message": "slow down"}


def test_kept_headers():
    assert kept_headers([("Retry-After", "1"), ("content-type", "x"), ("x-request-id", "r")]) == \
        [("Retry-After", "1"), ("x-request-id", "r")]
