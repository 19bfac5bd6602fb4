"""What one model request carries through the pipeline, and the two sides a front door supplies.

`Exchange` is the per-request state, one typed object from the front door to the record: the
record itself (proxy.core.record.UsageRecord), the times the overhead is computed from, the body
and its reading, what trajectories, the body tee and partials need, and what the relay learnt.
`Inbound` is the request as the pipeline reads it; `Downstream` is where the answer goes. The
aiohttp front door (proxy.server.app) implements both; `ccp mitm` reaches the same front door.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from proxy.core.record import UsageRecord

if TYPE_CHECKING:
    from proxy.config.settings import Settings
    from proxy.pipeline.sessions import Session
    from proxy.pipeline.state import ShimState
    from proxy.protocols import ProtocolAdapter

SAME = object()  # `Exchange.downstream`: what went down is what came up (a passthrough)


class Inbound(Protocol):
    """The model request as a front door hands it over."""

    path: str
    query_string: str
    content_type: str
    headers: Any  # case-insensitive, repeats kept: a multidict.CIMultiDict (get, getall, items)

    async def read_body(self, max_bytes: int) -> bytes: ...


class Downstream(Protocol):
    """Where the answer goes: a whole body, or a stream written as it arrives."""

    def whole(
        self,
        status: int,
        body: bytes,
        headers: Iterable[tuple[str, str]],
        content_type: str | None = None,
    ) -> None: ...

    async def open_stream(
        self,
        status: int,
        headers: Iterable[tuple[str, str]],
        first_chunk_ready: bool,
        content_type: str | None = None,
    ) -> None: ...

    async def write(self, chunk: bytes) -> None: ...

    async def write_last(self, chunk: bytes) -> None:
        """`chunk` and the end of the body, in one write."""

    async def end(self) -> None: ...


@dataclass(slots=True, eq=False)
class Exchange:
    state: ShimState
    settings: Settings  # the ones the request read (a control changed meanwhile: the next one)
    rec: UsageRecord
    protocol_in: ProtocolAdapter
    t0: float  # perf_counter() at arrival
    sent: float | None = None  # when the upstream request left (the overhead's first part ends)
    upstream_done: float | None = None  # when the upstream's last byte arrived
    credentials: list[str] = field(default_factory=list)  # the request's own: secrets to mask
    # the body: its bytes, and the payload read from them (`exact`: as json.loads reads it; else
    # only `model` and `stream`)
    body: bytes | None = None
    payload: dict | None = None
    exact: bool = False
    stream: bool = False
    session: Session | None = None
    trace_ts: str | None = None  # a session's trajectory pair, when the query was written
    trace_secrets: list[str] | None = None
    tee_payload: dict | None = None  # ENABLE_BODY_TEE: the request, for the sample
    events: list[bytes] | None = None  # the upstream's raw SSE (trajectory, tee), when wanted
    upstream_body: bytes | None = None  # a whole upstream answer
    downstream: Any = SAME  # what a conversion sent down (trajectory)
    tool_names: dict[str, str] = field(default_factory=dict)  # shortened for the provider -> own
    stop_sequences: Any = None  # the converted request's `stop`, for `stop_sequence` in answers
    upstream_protocol: str | None = None
    signatures: list = field(default_factory=list)  # thinking signatures a stream carried

    def save_partial(self, chunks: list[bytes]) -> str | None:
        """Keep what a broken stream relayed (logs/partials/<rid>.partial, secrets masked); None
        when the disk refused it (the partial sink counts and says so)."""
        path = self.state.save_partial(self.rec["rid"], chunks, self.credentials)
        return None if path is None else str(path)
