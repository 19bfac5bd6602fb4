"""Prometheus metrics for one shim process (`GET /metrics`).

Each app owns its own `CollectorRegistry`, so several shims (or tests) in one process never share
counters. Most series are fed from the finished usage record (`observe()`), so metrics and logs count
the same things; the in-flight gauge and the rotation and partial counters are fed where they happen.
"""
from __future__ import annotations

import asyncio

from prometheus_client import (CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram,
                               generate_latest)

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]

_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("ccp_requests", "Requests that reached the shim",
                                ("lane", "decision", "op", "status"), registry=r)
        self.latency = Histogram("ccp_request_latency_seconds", "Time from request to last byte",
                                 ("lane", "op"), buckets=_BUCKETS, registry=r)
        self.ttfb = Histogram("ccp_first_byte_seconds", "Time from request to first relayed byte",
                              ("lane", "op"), buckets=_BUCKETS, registry=r)
        self.upstream_errors = Counter("ccp_upstream_errors", "Requests that ended with an error",
                                       ("err_type",), registry=r)
        self.inflight_streams = Gauge("ccp_inflight_streams", "Streams being relayed now", registry=r)
        self.partials = Counter("ccp_partial_writes", "Broken streams saved under logs/partials",
                                registry=r)
        self.rotations = Counter("ccp_log_rotations", "Usage log rotations", registry=r)
        self.bytes = Counter("ccp_relayed_bytes", "Bytes relayed", ("direction",), registry=r)
        self.retries = Counter("ccp_upstream_retries", "Upstream retries (backoff)", registry=r)
        self.tasks = Gauge("ccp_tasks", "asyncio tasks alive in the shim's loop", registry=r)
        # the SQLite usage store (proxy.store): fed from its writer thread and rollup task
        self.store_writes = Counter("ccp_store_writes", "Usage records written to the store",
                                    registry=r)
        self.store_write_errors = Counter("ccp_store_write_errors",
                                          "Usage records the store could not write (JSONL has them)",
                                          registry=r)
        self.store_rollup = Histogram("ccp_store_rollup_duration_seconds",
                                      "Time one hour/day rollup refresh (and pruning) took",
                                      buckets=_BUCKETS, registry=r)
        self.store_bytes = Gauge("ccp_store_size_bytes", "Size of the store on disk (with its WAL)",
                                 registry=r)
        self.quota_pct = Gauge("ccp_quota_used_pct", "Budget used, per quota and window",
                               ("quota", "window"), registry=r)
        self.quota_blocked = Gauge("ccp_quota_blocked", "1 while a quota blocks", ("quota",),
                                   registry=r)

        # observe() runs for every request: the labelled children it feeds, looked up once each
        # (a child lives as long as its metric; nothing here ever removes one)
        self._bytes_in = self._bytes_out = None  # made by the first observe(), as before
        self._by_request: dict[tuple, list] = {}
        self._by_error: dict[str, object] = {}

    def observe(self, rec: dict) -> None:
        """Count one finished request from its usage record."""
        get = rec.get
        lane = get("lane") or "none"
        op = get("op") or "none"
        key = (lane, get("decision") or "none", op, get("status"))
        kids = self._by_request.get(key)
        if kids is None:  # [requests, latency, ttfb]; a histogram's child once it has a value
            kids = self._by_request[key] = [self.requests.labels(*key[:3], str(key[3])), None, None]
        kids[0].inc()
        value = get("latency_ms")
        if isinstance(value, (int, float)):
            if kids[1] is None:
                kids[1] = self.latency.labels(lane, op)
            kids[1].observe(value / 1000.0)
        value = get("ttfb_ms")
        if isinstance(value, (int, float)):
            if kids[2] is None:
                kids[2] = self.ttfb.labels(lane, op)
            kids[2].observe(value / 1000.0)
        err_type = get("err_type")
        if err_type:
            child = self._by_error.get(err_type)
            if child is None:
                child = self._by_error[err_type] = self.upstream_errors.labels(err_type)
            child.inc()
        if self._bytes_in is None:
            self._bytes_in, self._bytes_out = self.bytes.labels("in"), self.bytes.labels("out")
        self._bytes_in.inc(get("bytes_in") or 0)
        self._bytes_out.inc(get("bytes_out") or 0)
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
