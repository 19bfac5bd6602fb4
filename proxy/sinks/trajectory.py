"""Trajectory QA files: what a sandboxed session asked its model and what came back.

For each model request of a session the shim writes `logs/trajectory/<session>/query/<ts>.json` (the
full upstream request body plus route and session ids) and `answer/<ts>.json` (the upstream response
body and the downstream response body; for streams the assembled message and the raw events) with the
same `<ts>`. `<ts>` is unique within the process even for concurrent requests (a UTC time with
microseconds plus a sequence number). Everything passes through `redact()` before it is written.
"""

from __future__ import annotations

import itertools
import json
import os
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from proxy.core.jsontext import dumps
from proxy.core.redact import redact
from proxy.sinks.health import write_whole

TRAJECTORY_DIR = "trajectory"


class TrajectoryWriter:
    def __init__(self, logs_dir: str | os.PathLike) -> None:
        self.root = Path(logs_dir) / TRAJECTORY_DIR
        self._seq = itertools.count(1)
        self._lock = threading.Lock()

    def new_ts(self) -> str:
        """A file stem unique within this process, sortable by time."""
        with self._lock:
            n = next(self._seq)
        now = datetime.now(UTC)
        return now.strftime("%Y%m%dT%H%M%S.%f") + f"Z-{n:06d}"

    def _write(self, session: str, kind: str, ts: str, data: dict, secrets: Iterable[str]) -> Path:
        folder = self.root / session / kind
        folder.mkdir(parents=True, exist_ok=True)
        # a reader never sees half a file, and a full disk never leaves one (nor its .tmp); lone
        # surrogates escaped
        return write_whole(folder / f"{ts}.json", dumps(redact(data, secrets), indent=1))

    def write_query(
        self, session: str, ts: str, body: Any, meta: dict, secrets: Iterable[str]
    ) -> Path:
        return self._write(session, "query", ts, {"ts": ts, **meta, "request": body}, secrets)

    def write_answer(
        self,
        session: str,
        ts: str,
        meta: dict,
        upstream: Any,
        downstream: Any,
        secrets: Iterable[str],
    ) -> Path:
        return self._write(
            session,
            "answer",
            ts,
            {"ts": ts, **meta, "upstream_response": upstream, "downstream_response": downstream},
            secrets,
        )


def parse_json_or_text(data: bytes) -> Any:
    """A body as JSON when it is JSON, else as text (never raises)."""
    try:
        return json.loads(data)
    except ValueError:
        return data.decode("utf-8", errors="replace")
