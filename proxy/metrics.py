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

    def observe(self, rec: dict) -> None:
        """Count one finished request from its usage record."""
        lane = rec.get("lane") or "none"
        op = rec.get("op") or "none"
        self.requests.labels(lane, rec.get("decision") or "none", op, str(rec.get("status"))).inc()
        if isinstance(rec.get("latency_ms"), (int, float)):
            self.latency.labels(lane, op).observe(rec["latency_ms"] / 1000.0)
        if isinstance(rec.get("ttfb_ms"), (int, float)):
            self.ttfb.labels(lane, op).observe(rec["ttfb_ms"] / 1000.0)
        if rec.get("err_type"):
            self.upstream_errors.labels(rec["err_type"]).inc()
        self.bytes.labels("in").inc(rec.get("bytes_in") or 0)
        self.bytes.labels("out").inc(rec.get("bytes_out") or 0)
        if rec.get("retries"):
            self.retries.inc(rec["retries"])
        if rec.get("partial"):
            self.partials.inc()

    def render(self) -> bytes:
        try:
            self.tasks.set(len(asyncio.all_tasks()))
        except RuntimeError:  # no running loop (a test rendering directly)
            pass
        return generate_latest(self.registry)
