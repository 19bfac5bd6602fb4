"""Write health of the shim's sinks: what could not be written is counted, said once, and reported.

A sink (the usage log, the store, trajectories, partials, the body tee) that cannot write (a full
disk, a read-only folder, a file-size limit) must never fail the client's request, and must never
lose a record silently. `SinkHealth.failed(exc)` is what a sink calls instead of raising: it counts
the records lost in `ccp_sink_write_errors_total{sink}`, logs ONE line per kind of failure (the
errno name: a full disk fills the log with nothing but that one line, however many requests come),
and marks the sink degraded for `/readyz`. `ok()` after a write that worked says once that the sink
writes again and clears the state, so the next failure is said again.

`write_whole(path, data)` writes a file whole or not at all (a temporary name, then a rename; the
temporary file is removed when the write fails), for the sinks that write one file per record.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from proxy.sinks.metrics import Metrics

log = logging.getLogger("ccp.sinks")

USAGE_LOG, STORE, TRAJECTORY, PARTIAL, TEE = "usage_log", "store", "trajectory", "partial", "tee"
SINKS = (USAGE_LOG, STORE, TRAJECTORY, PARTIAL, TEE)
# what the failure line adds about where the records still are
# the logger each sink's lines go to (the store's lines keep the store's own logger)
LOGGERS = {STORE: "ccp.store"}
NOTES = {STORE: ", usage goes to JSONL only (the next start imports its recent records)"}


def failure_kind(exc: BaseException) -> str:
    """What went wrong, as short as an operator greps for: the errno name (`ENOSPC`, `EROFS`,
    `EFBIG`), else the exception's type (SQLite says `database or disk is full` without an errno)."""
    code = getattr(exc, "errno", None)
    if isinstance(code, int) and code in errno.errorcode:
        return errno.errorcode[code]
    return type(exc).__name__


class SinkHealth:
    """One sink's write health. Thread-safe: the store's writer thread reports here too."""

    def __init__(self, name: str, metrics: Metrics | None = None, where: str = "") -> None:
        self.name = name
        self.where = where  # the file or folder, for the log line
        self._cell = metrics.sink_write_errors.labels(sink=name) if metrics is not None else None
        self.degraded: str | None = None  # the last failure, while the sink is failing
        self.since: float | None = None  # when it started failing
        self.errors = 0  # records lost, ever
        self.lost = 0  # records lost since it started failing
        self._kinds: set[str] = set()  # the kinds already logged while it is failing
        self._lock = threading.Lock()
        self._log = logging.getLogger(LOGGERS.get(name, log.name))

    def failed(self, exc: BaseException | None, n: int = 1) -> None:
        """`n` records could not be written because of `exc`: count them; log the first of a kind.
        `exc` None: still the failure already said (a sink that stays off), counted only."""
        kind = failure_kind(exc) if exc is not None else None
        with self._lock:
            self.errors += n
            self.lost += n
            if self.since is None:
                self.since = time.time()
            first = kind is not None and kind not in self._kinds
            if kind is not None:
                self.degraded = f"{kind}: {exc}"
                self._kinds.add(kind)
            elif self.degraded is None:
                self.degraded = "failing"
        if self._cell is not None and n:
            self._cell.inc(n)
        if first:
            self._log.error(
                "sink %s%s cannot write (%s: %s): requests are still answered%s; each record "
                'lost is counted in ccp_sink_write_errors_total{sink="%s"}; said again when it '
                "recovers",
                self.name,
                f" ({self.where})" if self.where else "",
                kind,
                exc,
                NOTES.get(self.name, ""),
                self.name,
            )

    def ok(self) -> None:
        """A write worked: if the sink was failing, say once that it writes again."""
        if self.degraded is None:  # the every-request path: one attribute read, no lock
            return
        with self._lock:
            if self.degraded is None:
                return
            lost, since = self.lost, self.since or time.time()
            self.degraded, self.since, self.lost = None, None, 0
            self._kinds.clear()
        self._log.warning(
            "sink %s%s writes again after %.0f s; %d record(s) were lost meanwhile",
            self.name,
            f" ({self.where})" if self.where else "",
            time.time() - since,
            lost,
        )

    def view(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ok": self.degraded is None, "write_errors": self.errors}
        if self.degraded is not None:
            out.update(error=self.degraded, since=self.since, lost=self.lost)
        return out


class Sinks:
    """Every sink's health, by name (`sinks["usage_log"]`)."""

    def __init__(self, metrics: Metrics | None = None) -> None:
        self.health = {name: SinkHealth(name, metrics) for name in SINKS}

    def __getitem__(self, name: str) -> SinkHealth:
        return self.health[name]

    def degraded(self) -> list[str]:
        return [name for name, h in self.health.items() if h.degraded is not None]

    def report(self) -> dict[str, Any]:
        """What `/readyz` carries: `status` ok or degraded, the degraded sinks by name, each one's
        health."""
        bad = self.degraded()
        return {
            "status": "degraded" if bad else "ok",
            "degraded": bad,
            "sinks": {name: h.view() for name, h in self.health.items()},
        }


def write_whole(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` as `path`, whole or not at all: a reader (or a full disk) never leaves half a
    file under the real name. The temporary file of a write that failed is removed."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:  # (the folder itself may be what went wrong)
            pass
        raise
    return path
