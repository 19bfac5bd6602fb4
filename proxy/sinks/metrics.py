"""Prometheus metrics for one shim process (`GET /metrics`).

Each app owns its own `CollectorRegistry`, so several shims (or tests) in one process never share
counters. Most series are fed from the finished usage record (`observe()`), so metrics and logs count
the same things; the in-flight gauge and the rotation and partial counters are fed where they happen.
"""

from __future__ import annotations

import asyncio
import time
from bisect import bisect_left
from collections.abc import Mapping
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

from proxy.sinks.health import SINKS

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]

_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class _Level:
    """An unlabelled gauge moved by every stream (inc at its start, dec at its end): a plain
    number, like `_Cells`, rendered as prometheus_client's Gauge renders."""

    def __init__(self, name: str, doc: str, registry) -> None:
        self.name, self.doc, self.value = name, doc, 0.0
        registry.register(self)

    def inc(self, n: float = 1.0) -> None:
        self.value += n

    def dec(self, n: float = 1.0) -> None:
        self.value -= n

    def describe(self):
        return [GaugeMetricFamily(self.name, self.doc)]

    def collect(self):
        return [GaugeMetricFamily(self.name, self.doc, value=self.value)]


class _Cells:
    """A labelled counter or histogram that every request feeds: plain lists, no lock.

    prometheus_client's own metrics take a lock and walk their buckets in Python on every update
    (the client's own locking cost more than the update); these cells are only ever updated by the event
    loop's thread, and read whole when /metrics is rendered. The exposition is prometheus_client's
    own (its metric families), sample for sample what its Counter and Histogram write.
    """

    def __init__(
        self,
        name: str,
        doc: str,
        labelnames: tuple[str, ...],
        registry,
        buckets: tuple[float, ...] | None = None,
    ) -> None:
        self.name, self.doc, self.labelnames = name, doc, labelnames
        self.bounds = buckets  # None: a counter
        self._bounds = buckets or ()  # what observe() reads (only a histogram's cells are observed)
        self.cells: dict[tuple[str, ...], list] = {}
        registry.register(self)

    def cell(self, *labels: str) -> list:
        """A counter's `[value, created]`; a histogram's `[counts per bucket (+Inf last), sum,
        created]`. Update it in place: `cell[0] += n`, or `observe(cell, value)`."""
        cell = self.cells.get(labels)
        if cell is None:
            cell = self.cells[labels] = (
                [0.0, time.time()]
                if self.bounds is None
                else [[0] * (len(self.bounds) + 1), 0.0, time.time()]
            )
        return cell

    def observe(self, cell: list, value: float) -> None:
        cell[0][bisect_left(self._bounds, value)] += 1  # the first bucket whose bound is >= value
        cell[1] += value

    def describe(self):
        return [self._family()]

    def _family(self):
        if self.bounds is None:
            return CounterMetricFamily(self.name, self.doc, labels=self.labelnames)
        return HistogramMetricFamily(self.name, self.doc, labels=self.labelnames)

    def collect(self):
        family = self._family()
        created = []
        for labels, cell in list(self.cells.items()):
            if self.bounds is None:
                family.add_metric(labels, cell[0], created=cell[1])
                continue
            counts, total = list(cell[0]), cell[1]
            running, buckets = 0, []
            for bound, n in zip((*self.bounds, float("inf")), counts, strict=False):
                running += n
                buckets.append((floatToGoString(bound), float(running)))
            family.add_metric(labels, buckets, total)
            created.append(
                Sample(
                    self.name + "_created",
                    dict(zip(self.labelnames, labels, strict=False)),
                    cell[2],
                )
            )
        family.samples.extend(created)
        return [family]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = _Cells(
            "ccp_requests",
            "Requests that reached the shim",
            ("lane", "decision", "op", "status"),
            r,
        )
        self.latency = _Cells(
            "ccp_request_latency_seconds",
            "Time from request to last byte",
            ("lane", "op"),
            r,
            _BUCKETS,
        )
        self.ttfb = _Cells(
            "ccp_first_byte_seconds",
            "Time from request to first relayed byte",
            ("lane", "op"),
            r,
            _BUCKETS,
        )
        self.upstream_errors = _Cells(
            "ccp_upstream_errors", "Requests that ended with an error", ("err_type",), r
        )
        self.inflight_streams = _Level("ccp_inflight_streams", "Streams being relayed now", r)
        self.partials = Counter(
            "ccp_partial_writes", "Broken streams saved under logs/partials", registry=r
        )
        self.rotations = Counter("ccp_log_rotations", "Usage log rotations", registry=r)
        self.bytes = _Cells("ccp_relayed_bytes", "Bytes relayed", ("direction",), r)
        self.retries = Counter("ccp_upstream_retries", "Upstream retries (backoff)", registry=r)
        self.tasks = Gauge("ccp_tasks", "asyncio tasks alive in the shim's loop", registry=r)
        # the usage store (proxy.sinks.store, SQLite or PostgreSQL): fed from its writer thread and
        # rollup task
        self.store_writes = Counter(
            "ccp_store_writes", "Usage records written to the store", registry=r
        )
        self.store_write_errors = Counter(
            "ccp_store_write_errors",
            "Usage records the store could not write (JSONL has them)",
            registry=r,
        )
        # the queue in front of the store (CCP_STORE_QUEUE_MAX): a record that found it full was
        # dropped from the store (JSONL has it); the rows waiting now (a database away: growing)
        self.store_dropped = Counter(
            "ccp_store_dropped",
            "Usage records dropped from the store because its queue was full (JSONL has them)",
            registry=r,
        )
        self.store_queue = Gauge(
            "ccp_store_queue_rows", "Usage records waiting for the store", registry=r
        )
        # every sink (proxy.sinks.health): the records it could not write; every sink's series is
        # there from the start, so a rate() or an alert on it has a zero to start from
        self.sink_write_errors = Counter(
            "ccp_sink_write_errors",
            "Records a sink could not write (a full disk, a read-only folder); the client was answered",
            ("sink",),
            registry=r,
        )
        for sink in SINKS:
            self.sink_write_errors.labels(sink=sink)
        self.store_rollup = Histogram(
            "ccp_store_rollup_duration_seconds",
            "Time one hour/day rollup refresh (and pruning) took",
            buckets=_BUCKETS,
            registry=r,
        )
        self.store_bytes = Gauge(
            "ccp_store_size_bytes", "Size of the store on disk (with its WAL)", registry=r
        )
        self.quota_pct = Gauge(
            "ccp_quota_used_pct",
            "Budget used, per quota and window",
            ("quota", "window"),
            registry=r,
        )
        self.quota_blocked = Gauge(
            "ccp_quota_blocked", "1 while a quota blocks", ("quota",), registry=r
        )

        # observe() runs for every request: the cells it feeds, looked up once each
        self._bytes_cells: tuple[list, list] | None = None  # (in, out): made by the first observe()
        self._by_request: dict[tuple, list] = {}
        self._by_error: dict[str, list] = {}

    def observe(self, rec: Mapping[str, Any]) -> None:
        """Count one finished request from its usage record."""
        get = rec.get
        lane = get("lane") or "none"
        op = get("op") or "none"
        key = (lane, get("decision") or "none", op, get("status"))
        kids = self._by_request.get(key)
        if kids is None:  # [requests, latency, ttfb]; a histogram's cell once it has a value
            kids = self._by_request[key] = [self.requests.cell(*key[:3], str(key[3])), None, None]
        kids[0][0] += 1.0
        value = get("latency_ms")
        if isinstance(value, (int, float)):
            if kids[1] is None:
                kids[1] = self.latency.cell(lane, op)
            self.latency.observe(kids[1], value / 1000.0)
        value = get("ttfb_ms")
        if isinstance(value, (int, float)):
            if kids[2] is None:
                kids[2] = self.ttfb.cell(lane, op)
            self.ttfb.observe(kids[2], value / 1000.0)
        err_type = get("err_type")
        if err_type:
            cell = self._by_error.get(err_type)
            if cell is None:
                cell = self._by_error[err_type] = self.upstream_errors.cell(err_type)
            cell[0] += 1.0
        cells = self._bytes_cells
        if cells is None:
            cells = self._bytes_cells = (self.bytes.cell("in"), self.bytes.cell("out"))
        cells[0][0] += get("bytes_in") or 0
        cells[1][0] += get("bytes_out") or 0
        if get("retries"):
            self.retries.inc(rec["retries"])
        if get("partial"):
            self.partials.inc()

    def render(self) -> bytes:
        try:
            self.tasks.set(len(asyncio.all_tasks()))
        except RuntimeError:  # no running loop (a test rendering directly)
            pass
        return generate_latest(self.registry)
