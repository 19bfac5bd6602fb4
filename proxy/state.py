"""What every request of one shim process shares: settings, the upstream client, the usage writer,
sessions, trajectories and the thinking-signature book; plus the request-id counter."""
from __future__ import annotations

import os

from aiohttp import web

from proxy.headers import LaneCredentials
from proxy.metrics import Metrics
from proxy.partials import write_partial
from proxy.quotas import QuotaBook
from proxy.sessions import SessionRegistry
from proxy.settings import Settings
from proxy.store import UsageStore
from proxy.thinking import SignatureBook
from proxy.trajectory import TrajectoryWriter
from proxy.upstream import Upstream
from proxy.usage import UsageWriter

RID_HEADER = "x-ccp-request-id"
LANE_HEADER = "x-ccp-lane"


class ShimState:
    """Built once per app; handlers reach it through `request.app[STATE]`."""

    def __init__(self, settings: Settings, upstream: Upstream | None) -> None:
        self.settings = settings
        self.upstream: Upstream | None = upstream
        self.writer: UsageWriter | None = None
        self.sessions = SessionRegistry()
        self.trajectories = TrajectoryWriter(settings.logs_dir)
        self.signatures = SignatureBook()
        self.metrics = Metrics()
        self.quotas = QuotaBook(settings.quotas)  # proxy.quotas: accounting + row 4b
        self.store: UsageStore | None = None  # proxy.store: opened by open_store() (CCP_PERSIST)
        self.secret_values = [*settings.secrets()]
        self.creds = LaneCredentials(
            zai_api_key=settings.zai_api_key.reveal(),
            anthropic_auth_token=settings.anthropic_auth_token.reveal(),
            anthropic_api_key=settings.anthropic_api_key.reveal(),
            zai_header_mode=settings.zai_header_mode)
        # keys of every non-anthropic provider: never to be forwarded on the anthropic lane
        self.foreign_keys = frozenset(
            p.api_key.reveal() for name, p in settings.catalog.providers.items()
            if name != "anthropic" and p.api_key) | ({self.creds.zai_api_key} - {""})
        self._rid_prefix = os.urandom(4).hex()
        self._rid_count = 0

    def redaction_secrets(self, extra: "list[str] | tuple[str, ...]" = ()) -> list[str]:
        """Every value to mask in what the shim writes: configured keys, session tokens, and the
        request's own credentials (`extra`)."""
        return [*self.secret_values, *self.sessions.tokens(), *extra]

    def save_partial(self, rid: str, chunks: list[bytes], extra: "list[str] | tuple[str, ...]" = ()):
        """Write what a broken stream relayed to logs/partials/<rid>.partial (secrets masked)."""
        return write_partial(self.settings.logs_dir, rid, chunks, self.redaction_secrets(extra))

    def open_writer(self) -> UsageWriter:
        s = self.settings
        self.writer = UsageWriter(s.logs_dir, max_bytes=s.max_log_bytes, max_age=s.log_max_age,
                                  on_rotate=self.metrics.rotations.inc)
        return self.writer

    def open_store(self) -> UsageStore | None:
        """The SQLite usage store when CCP_PERSIST is on (a store that cannot open degrades)."""
        if self.settings.persist:
            self.store = UsageStore(self.settings.db_file, self.settings.sample_ttl_days,
                                    self.metrics)
            self.store.start()
        return self.store

    def record(self, rec: dict) -> None:
        """The end of every request: one usage line, the metrics, the quota book and the store."""
        line = self.writer.write(rec) if self.writer is not None else None
        self.metrics.observe(rec)
        self.quotas.account(rec)
        if self.store is not None:
            self.store.write(rec, line=line)  # only enqueues; the JSONL line never depends on it

    def new_rid(self) -> str:
        self._rid_count += 1
        return f"{self._rid_prefix}-{self._rid_count:06d}"


STATE = web.AppKey("state", ShimState)
