"""The per-request views of the HTML report: time buckets, errors per bucket and drill-down rows.

Pure functions over plain usage records (as `reports.usage_io.read_records` returns them), so each
number on the page can be traced to a `rid`. An *error* is a record whose status is not 2xx or
that carries an `err_type`; a *failure* (the drill-down table) is an error or an incomplete
request: a stream whose `sse.complete` is not true, or a record that left a `partial`.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

SLOWEST = 20  # rows in the slowest-requests table
BUCKETS = 24  # time buckets aimed for
NONE_LANE = "none"
# Bucket widths a reader can say out loud, in seconds.
NICE_WIDTHS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200,
               86400, 172800, 604800)


class Buckets(NamedTuple):
    labels: list[str]  # one per bucket, the bucket's start
    width_s: int
    index: list[int | None]  # per record: its bucket, or None when it has no readable ts
    start: str | None  # first and last record time covered (ISO-8601 UTC)
    end: str | None


def parse_ts(value) -> datetime | None:
    """A record's `ts` as an aware UTC datetime, or None when missing or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def lane_of(record: dict) -> str:
    lane = record.get("lane")
    return str(lane) if lane not in (None, "") else NONE_LANE


def _status(record: dict) -> int | None:
    try:
        return int(record.get("status"))
    except (TypeError, ValueError):
        return None


def is_error(record: dict) -> bool:
    """Not a 2xx answer (including no status at all), or an `err_type`."""
    status = _status(record)
    return status is None or not 200 <= status < 300 or record.get("err_type") is not None


def is_incomplete(record: dict) -> bool:
    """A stream that did not complete, or a record that left a partial file."""
    if record.get("partial"):
        return True
    if record.get("op") != "stream":
        return False
    sse = record.get("sse")
    return not (isinstance(sse, dict) and sse.get("complete") is True)


def time_buckets(records: list[dict], target: int = BUCKETS) -> Buckets:
    """Equal buckets of a nice width (1 s … 1 week) over the records' time range, aligned to it."""
    times = [parse_ts(r.get("ts")) for r in records]
    known = [t for t in times if t is not None]
    if not known:
        return Buckets([], 0, [None] * len(records), None, None)
    first, last = min(known), max(known)
    span = (last - first).total_seconds()
    width = next((w for w in NICE_WIDTHS if w * target >= span), NICE_WIDTHS[-1])
    epoch = first.timestamp()
    origin = datetime.fromtimestamp(math.floor(epoch / width) * width, tz=UTC)
    n = int((last - origin).total_seconds() // width) + 1
    fmt = "%H:%M:%S" if width < 60 else "%H:%M"
    if last.date() != first.date() or width >= 86400:
        fmt = "%m-%d " + fmt if width < 86400 else "%Y-%m-%d"
    labels = [(origin + timedelta(seconds=width * i)).strftime(fmt) for i in range(n)]
    index = [None if t is None else min(int((t - origin).total_seconds() // width), n - 1)
             for t in times]
    return Buckets(labels, width, index, _iso(first), _iso(last))


def per_bucket(records: list[dict], buckets: Buckets,
               keep: Callable[[dict], bool] = lambda r: True) -> dict[str, list[int]]:
    """lane → counts per bucket of the records `keep` accepts (lanes sorted)."""
    counts: dict[str, list[int]] = {}
    for record, i in zip(records, buckets.index):
        if i is None or not keep(record):
            continue
        counts.setdefault(lane_of(record), [0] * len(buckets.labels))[i] += 1
    return dict(sorted(counts.items()))


def width_text(seconds: int) -> str:
    """A bucket width for people: 30 s, 5 min, 2 h, 1 d."""
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def _number(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def _row(record: dict) -> dict:
    return {"rid": str(record.get("rid") or "–"), "ts": str(record.get("ts") or "–"),
            "model": str(record.get("model") or "–"), "lane": lane_of(record),
            "op": str(record.get("op") or "–"), "status": _status(record),
            "latency_ms": _number(record.get("latency_ms")),
            "ttfb_ms": _number(record.get("ttfb_ms"))}


def slowest(records: list[dict], n: int = SLOWEST) -> list[dict]:
    """The `n` records with the highest latency_ms, slowest first (ties by rid)."""
    timed = [r for r in records if _number(r.get("latency_ms")) is not None]
    timed.sort(key=lambda r: (-_number(r.get("latency_ms")), str(r.get("rid"))))
    return [_row(r) for r in timed[:n]]


def problem(record: dict) -> str:
    """Why a record is in the failures table, in words."""
    parts = []
    status = _status(record)
    if status is None:
        parts.append("no status")
    elif not 200 <= status < 300:
        parts.append(f"HTTP {status}")
    if record.get("err_type") is not None:
        parts.append(str(record["err_type"]))
    if is_incomplete(record):
        parts.append("incomplete stream" if record.get("op") == "stream" else "partial")
    return ", ".join(parts)


def failures(records: list[dict]) -> list[dict]:
    """Every error or incomplete record, in log order, with its reason and partial file."""
    return [{**_row(r), "err_type": r.get("err_type"), "reason": r.get("reason"),
             "partial": r.get("partial"), "problem": problem(r)}
            for r in records if is_error(r) or is_incomplete(r)]
