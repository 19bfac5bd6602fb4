"""A test double for the upstream seam, shipped with the package: `FakeUpstream` and `FakeResponse`.

    upstream = FakeUpstream(FakeResponse.json({"type": "message", ...}))
    app = create_app(settings, upstream)        # the handler sends through it as through a client
    ...
    upstream.requests[0].url, upstream.requests[0].headers, upstream.requests[0].body

It keeps the seam's whole interface (`start`, `send`, `close`; a response's `status`, `headers`,
`h2`, `is_sse`, `chunks`, `read`, `release`, `close`), records every request it was sent, and answers
from a script: each element a `FakeResponse`, an exception to raise from `send`, or a function of the
request returning either. An empty script answers 502-shaped `UpstreamError` so a test that sends
more than it scripted fails loudly, with the request named.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterable

from proxy.core.errors import UpstreamError
from proxy.upstream.base import UpstreamRequest


class FakeResponse:
    """One scripted answer: a status, headers and a body in chunks. `fail_with` is raised before
    chunk number `fail_after` (a stream that breaks); `gate`, when given, holds the body after its
    first chunk until the event is set (a stream still in flight)."""

    def __init__(
        self,
        status: int = 200,
        headers: Iterable[tuple[str, str]] = (("content-type", "application/json"),),
        chunks: Iterable[bytes] = (),
        *,
        fail_after: int | None = None,
        fail_with: BaseException | None = None,
        gate: asyncio.Event | None = None,
        h2: bool = False,
    ) -> None:
        self.status = status
        self.headers = list(headers)
        self.h2 = h2
        self._chunks = list(chunks)
        self._fail_after = fail_after
        self._fail_with = fail_with
        self._gate = gate
        self.released = False
        self.closed = False

    @classmethod
    def json(cls, payload: object, status: int = 200, **kwargs) -> FakeResponse:
        body = json.dumps(payload).encode()
        return cls(status, [("content-type", "application/json")], [body], **kwargs)

    @classmethod
    def sse(cls, events: Iterable[bytes], status: int = 200, **kwargs) -> FakeResponse:
        return cls(status, [("content-type", "text/event-stream")], events, **kwargs)

    @property
    def is_sse(self) -> bool:
        return any(
            k.lower() == "content-type" and v.split(";")[0].strip() == "text/event-stream"
            for k, v in self.headers
        )

    async def chunks(self) -> AsyncIterator[bytes]:
        for i, chunk in enumerate(self._chunks):
            if self._fail_after == i and self._fail_with is not None:
                raise self._fail_with
            if i == 1 and self._gate is not None:
                await self._gate.wait()
            yield chunk
        if self._fail_after == len(self._chunks) and self._fail_with is not None:
            raise self._fail_with

    async def read(self) -> bytes:
        parts = [chunk async for chunk in self.chunks()]
        return b"".join(parts)

    def release(self) -> None:
        self.released = True

    def close(self) -> None:
        self.closed = True


Answer = FakeResponse | BaseException | Callable[[UpstreamRequest], FakeResponse]


class FakeUpstream:
    """The seam with no network: records what it was sent, answers from `script` in order."""

    def __init__(self, *script: Answer) -> None:
        self.requests: list[UpstreamRequest] = []
        self.responses: list[Answer] = list(script)
        self.error: BaseException | None = None  # raised by every send() while set
        self.started = False
        self.closed = False

    async def start(self) -> None:
        self.started = True

    async def close(self) -> None:
        self.closed = True

    async def send(self, request: UpstreamRequest) -> FakeResponse:
        self.requests.append(request)
        if self.error is not None:
            raise self.error
        if not self.responses:
            raise UpstreamError(
                f"FakeUpstream: no answer scripted for {request.method} {request.url}"
            )
        answer = self.responses.pop(0)
        if callable(answer) and not isinstance(answer, FakeResponse):
            answer = answer(request)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def last(self) -> tuple[str, dict[str, str], object]:
        """The last request's URL, its headers by lower-case name, and its JSON body."""
        req = self.requests[-1]
        return req.url, {k.lower(): v for k, v in req.headers.items()}, json.loads(req.body)
