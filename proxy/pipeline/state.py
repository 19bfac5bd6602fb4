"""What every request of one shim process shares: settings, the upstream client, the usage writer,
sessions, trajectories and the thinking-signature book; plus the request-id counter.

The runtime controls (proxy.pipeline.controls: paused, the zai header mode, the model override, the
catalog) live here as one snapshot, `controls`, and `settings` is always the start-time settings
with them applied. A change replaces both (`change_controls`, `reload_providers`): a request reads
`state.settings` once and keeps what it read, the next request sees the change."""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from proxy.config.catalog import Catalog
from proxy.config.load import load_settings
from proxy.config.settings import Settings
from proxy.core.headers import LaneCredentials
from proxy.core.record import UsageRecord, new_record
from proxy.core.redact import REQUEST_SECRETS, clean_record
from proxy.core.thinking import SignatureBook
from proxy.core.trust import Trust
from proxy.pipeline import controls as rc
from proxy.pipeline.sessions import SessionRegistry
from proxy.sinks.engines import open_store
from proxy.sinks.health import PARTIAL, STORE, USAGE_LOG, Sinks
from proxy.sinks.metrics import Metrics
from proxy.sinks.partials import write_partial
from proxy.sinks.quotas import QuotaBook
from proxy.sinks.store import UsageStore
from proxy.sinks.trajectory import TrajectoryWriter
from proxy.sinks.usage_log import UsageWriter
from proxy.upstream.base import Upstream

RID_HEADER = "x-ccp-request-id"
LANE_HEADER = "x-ccp-lane"

log = logging.getLogger("ccp.control")


def _foreign_keys(catalog: Catalog, zai_api_key: str) -> frozenset[str]:
    """Keys of every non-anthropic provider: never to be forwarded on the anthropic lane."""
    return frozenset(
        p.api_key.reveal()
        for name, p in catalog.providers.items()
        if name != "anthropic" and p.api_key
    ) | ({zai_api_key} - {""})


class ShimState:
    """Built once per app; handlers reach it through `request.app[STATE]`."""

    def __init__(self, settings: Settings, upstream: Upstream | None) -> None:
        self.base_settings = settings  # as the shim started; `settings` has the controls applied
        self.settings = settings
        self.controls = rc.initial(settings, time.time())
        # what `POST /v1/admin/providers/reload` reads again (the environment and the config files)
        self.load_settings: Callable[[], Settings] = load_settings
        self.upstream: Upstream | None = upstream
        self.writer: UsageWriter | None = None
        self.sessions = SessionRegistry()
        # a file name carries the instance, so a fleet's folders merge (`ccp trajectories merge`)
        self.trajectories = TrajectoryWriter(settings.logs_dir, settings.instance)
        self.signatures = SignatureBook()
        self.metrics = Metrics()
        self.sinks = Sinks(self.metrics)  # each sink's write health: /readyz, one log line a kind
        self.quotas = QuotaBook(settings.quotas)  # proxy.sinks.quotas: accounting + row 4b
        self.store: UsageStore | None = (
            None  # proxy.sinks.store: opened by open_store() (CCP_PERSIST)
        )
        self.secret_values = [*settings.secrets()]
        self.creds = LaneCredentials(
            zai_api_key=settings.zai_api_key.reveal(),
            anthropic_auth_token=settings.anthropic_auth_token.reveal(),
            anthropic_api_key=settings.anthropic_api_key.reveal(),
            zai_header_mode=settings.zai_header_mode,
        )
        # the admin token is no lane's credential: a client that sends it never has it forwarded
        self.admin_token = settings.admin_token.reveal()
        self.foreign_keys = _foreign_keys(settings.catalog, self.creds.zai_api_key) | (
            {self.admin_token} - {""}
        )
        # which Host and Origin values may talk to the shim (serve() adds the bound address)
        self.trust = Trust(settings.allowed_hosts, settings.allowed_origins)
        # decide() per (model, protocol), for the settings object it was made with (prepare._decided),
        # with the bytes its keys hold (bounded by CCP_DECISION_CACHE_BYTES)
        self.decisions: tuple[Settings, dict] | None = None
        self.decision_bytes = 0
        self._rid_prefix = os.urandom(4).hex()
        self._rid_count = 0

    # ------------------------------------------------------------ runtime controls
    def change_controls(self, updates: Mapping[str, Any], by: str, path: str) -> list[rc.Change]:
        """Apply checked `updates` (rc.parse_updates) from the next request on; each real change is
        logged and written as one control record. Returns the changes (none: nothing differed)."""
        controls, changes = rc.changed(self.controls, updates, by, time.time())
        if changes:
            self._use(controls)
            for change in changes:
                self.record_control(change, by, path)
        return changes

    def reload_providers(self, fresh: Settings, by: str, path: str) -> rc.Change:
        """Take the catalog of `fresh` (settings read again); a ValueError leaves all as it was."""
        controls, change = rc.reloaded(self.controls, fresh, by, time.time())
        self._use(controls)
        # a new provider's key is a secret to mask and never goes out on the anthropic lane (nor
        # does a key the old catalog had: what was foreign stays so)
        self.secret_values = list(dict.fromkeys([*self.secret_values, *self.settings.secrets()]))
        self.foreign_keys = self.foreign_keys | _foreign_keys(
            self.settings.catalog, self.creds.zai_api_key
        )
        self.record_control(change, by, path)
        return change

    def _use(self, controls: rc.Controls) -> None:
        self.settings = rc.effective_settings(self.base_settings, controls)
        self.controls = controls

    def record_control(self, change: rc.Change, by: str, path: str) -> UsageRecord:
        """One usage line marking a decision change (op `control`); not a model request, so it
        feeds neither the metrics, the quota book nor the store."""
        rec = new_record(self.new_rid(), path)
        rec["op"] = rc.CONTROL_OP
        rec["decision"] = rc.CONTROL_DECISION
        rec["status"] = 200
        rec["reason"] = f"{change.control} changed"
        rec["control"] = {"name": change.control, "from": change.old, "to": change.new, "by": by}
        level = logging.WARNING if change.control == "paused" else logging.INFO  # the kill switch
        log.log(
            level,
            "[%s] control %s: %s -> %s (by %s)",
            rec["rid"],
            change.control,
            _shown(change.old),
            _shown(change.new),
            by,
        )
        clean_record(rec, self.redaction_secrets())  # type: ignore[arg-type]
        if self.writer is not None:
            self.writer.write(rec)
        return rec

    def redaction_secrets(self, extra: list[str] | tuple[str, ...] = ()) -> list[str]:
        """Every value to mask in what the shim writes: configured keys, session tokens, and the
        request's own credentials (`extra`)."""
        return [*self.secret_values, *self.sessions.tokens(), *extra]

    def save_partial(self, rid: str, chunks: list[bytes], extra: list[str] | tuple[str, ...] = ()):
        """Write what a broken stream relayed to logs/partials/<rid>.partial (secrets masked); None
        when the disk refused it (counted and said by the partial sink's health, never raised)."""
        health = self.sinks[PARTIAL]
        try:
            path = write_partial(self.settings.logs_dir, rid, chunks, self.redaction_secrets(extra))
        except OSError as exc:
            health.failed(exc)
            return None
        health.ok()
        return path

    def open_writer(self) -> UsageWriter:
        s = self.settings
        self.writer = UsageWriter(
            s.logs_dir,
            max_bytes=s.max_log_bytes,
            max_age=s.log_max_age,
            on_rotate=self.metrics.rotations.inc,
            health=self.sinks[USAGE_LOG],
        )
        return self.writer

    def open_store(self) -> UsageStore | None:
        """The usage store when CCP_PERSIST is on (CCP_STORE_URL: SQLite or PostgreSQL; a store
        that cannot open degrades), with what the usage log has and it lacks imported first (a
        crash's last records: proxy.sinks.store.reconcile), so that the quota book rebuilt from it
        is what the log says. Runs before the shim serves: nothing is written meanwhile."""
        s = self.settings
        if s.persist:
            self.store = open_store(
                s.store_target,
                ttl_days=s.sample_ttl_days,
                metrics=self.metrics,
                health=self.sinks[STORE],
                instance=s.instance or None,
                queue_max=s.store_queue_max,
            )
            fleet = getattr(self.store.engine, "fleet", None)  # a shared (PostgreSQL) store
            if fleet is not None:
                self.sessions.shared = fleet(s.instance or None)
                self.quotas.instance = s.instance or "?"
            if self.store.start():
                where = self.store.where
                try:
                    read, added = self.store.reconcile(s.logs_dir)
                except (*self.store.engine.errors, sqlite3.Error, OSError) as exc:
                    # the log or the store: it serves anyway
                    log.warning("usage store %s not reconciled with the usage log: %s", where, exc)
                else:
                    if added:
                        log.info(
                            "usage store %s: %d record(s) of the usage log's last %d imported "
                            "(written to the log, not to the store, before the last stop)",
                            where,
                            added,
                            read,
                        )
        return self.store

    def record(self, rec: UsageRecord) -> None:
        """The end of every request: one usage line, the metrics, the quota book and the store;
        the record first cleaned of every secret (the request's own credentials too, which the
        pipeline put in REQUEST_SECRETS) and of what UTF-8 cannot encode (`clean_record`).
        Never raises for a disk: a sink that cannot write counts and says so (proxy.sinks.health),
        and the client keeps the answer it got."""
        clean_record(rec, self.redaction_secrets(REQUEST_SECRETS.get()))  # type: ignore[arg-type]
        line = self.writer.write(rec) if self.writer is not None else None
        self.metrics.observe(rec)
        self.quotas.account(rec)
        if self.store is not None:
            self.store.write(rec, line=line)  # only enqueues; the JSONL line never depends on it

    def new_rid(self) -> str:
        self._rid_count += 1
        return f"{self._rid_prefix}-{self._rid_count:06d}"


def _shown(value: Any) -> str:
    """A control's value for the log line (a catalog as its files and counts)."""
    if isinstance(value, dict):
        return (
            f"{', '.join(value['files']) or 'built-in'} ({len(value['providers'])} providers, "
            f"{len(value['routes'])} routes)"
        )
    return "none" if value is None else str(value)


STATE = web.AppKey("state", ShimState)
