"""Trajectory QA files: what a sandboxed session asked its model and what came back.

For each model request of a session the shim writes `logs/trajectory/<session>/query/<ts>.json` (the
full upstream request body plus route and session ids) and `answer/<ts>.json` (the upstream response
body and the downstream response body; for streams the assembled message and the raw events) with the
same `<ts>`. `<ts>` is unique within the process even for concurrent requests (a UTC time with
microseconds plus a sequence number), and across a fleet: it carries the instance (CCP_INSTANCE, made
safe for a file name), `<time>Z-<instance>-<n>`, so the folders of several shims merge without a
collision, ordered by time (`merge()`, `ccp trajectories merge DIR… --out DIR`). Everything passes
through `redact()` before it is written.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import shutil
import sys
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from proxy.core.jsontext import dumps
from proxy.core.redact import redact
from proxy.sinks.health import write_whole

TRAJECTORY_DIR = "trajectory"
_UNSAFE = re.compile(r"[^A-Za-z0-9._]+")


def instance_tag(instance: str | None) -> str:
    """An instance name as a file name's part (`host:18080` → `host-18080`); "" for none."""
    return _UNSAFE.sub("-", instance or "").strip("-.")[:48]


class TrajectoryWriter:
    def __init__(self, logs_dir: str | os.PathLike, instance: str | None = None) -> None:
        self.root = Path(logs_dir) / TRAJECTORY_DIR
        self.tag = instance_tag(instance)
        self._seq = itertools.count(1)
        self._lock = threading.Lock()

    def new_ts(self) -> str:
        """A file stem unique within this process and (with an instance) the fleet, sortable by
        time."""
        with self._lock:
            n = next(self._seq)
        now = datetime.now(UTC)
        tag = f"{self.tag}-" if self.tag else ""
        return now.strftime("%Y%m%dT%H%M%S.%f") + f"Z-{tag}{n:06d}"

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


# ---------------------------------------------------------------- merging a fleet's folders
def _roots(folder: str | os.PathLike) -> Path:
    """A logs folder (with trajectory/ in it) or a trajectory folder itself."""
    path = Path(folder)
    return path / TRAJECTORY_DIR if (path / TRAJECTORY_DIR).is_dir() else path


def merge(folders: Iterable[str | os.PathLike], out: str | os.PathLike) -> dict:
    """Merge the trajectory folders of several shims into `out`: one folder per session with every
    shim's query/answer files (the same name and bytes twice: once; the same name with other
    bytes, an older shim's name: kept as `<stem>~<k>`), and `<session>/index.jsonl`, one line per
    pair ordered by time (ts, instance, query, answer). Returns counts per session."""
    out_root = Path(out)
    report: dict[str, dict] = {}
    for src in [_roots(f) for f in folders]:
        if not src.is_dir():
            raise FileNotFoundError(f"{src}: no trajectory folder")
        for session in sorted(p for p in src.iterdir() if p.is_dir()):
            stats = report.setdefault(session.name, {"copied": 0, "same": 0, "renamed": 0})
            renames: dict[str, str] = {}  # one stem renamed alike in query/ and answer/
            for kind in ("query", "answer"):
                for f in sorted((session / kind).glob("*.json")):
                    stem = renames.get(f.stem, f.stem)
                    dest = out_root / session.name / kind / f"{stem}.json"
                    if dest.exists():
                        if dest.read_bytes() == f.read_bytes():
                            stats["same"] += 1
                            continue
                        k = 1
                        while (out_root / session.name / kind / f"{f.stem}~{k}.json").exists():
                            k += 1
                        stem = renames[f.stem] = f"{f.stem}~{k}"
                        dest = out_root / session.name / kind / f"{stem}.json"
                        stats["renamed"] += 1
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(f, dest)
                    stats["copied"] += 1
    for name, stats in report.items():
        stats["pairs"] = _index(out_root / name)
    return report


def _stem_time(stem: str) -> str:
    return stem.split("Z-", 1)[0]


def _index(folder: Path) -> int:
    """Write `index.jsonl` of one merged session: its pairs in time order."""
    rows = []
    for q in (folder / "query").glob("*.json"):
        a = folder / "answer" / q.name
        try:
            meta = json.loads(q.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            meta = {}
        stem = q.stem
        rest = stem.split("Z-", 1)[1] if "Z-" in stem else ""
        instance = rest.rsplit("-", 1)[0] if "-" in rest else ""
        if isinstance(meta, dict) and isinstance(meta.get("instance"), str):
            instance = meta["instance"]
        rows.append(
            {
                "ts": _stem_time(stem),
                "instance": instance,
                "query": f"query/{q.name}",
                "answer": f"answer/{q.name}" if a.exists() else None,
                "route": meta.get("route") if isinstance(meta, dict) else None,
                "rid": meta.get("rid") if isinstance(meta, dict) else None,
            }
        )
    rows.sort(key=lambda r: (r["ts"], r["instance"], r["query"]))
    text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows)
    # (a session folder with no pairs yet: an empty index)
    folder.mkdir(parents=True, exist_ok=True)
    write_whole(folder / "index.jsonl", text.encode())
    return len(rows)


def main(argv: list[str]) -> int:
    """`ccp trajectories merge DIR… --out DIR`."""
    parser = argparse.ArgumentParser(
        prog="ccp trajectories",
        description="Trajectory folders: `merge` several shims' into one view per session.",
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("merge", help="merge logs (or trajectory) folders into --out")
    m.add_argument(
        "folders", nargs="+", metavar="DIR", help="each shim's logs folder (or its trajectory/)"
    )
    m.add_argument("--out", required=True, metavar="DIR", help="the merged folder (made)")
    args = parser.parse_args(argv)
    try:
        report = merge(args.folders, args.out)
    except FileNotFoundError as exc:
        print(f"UsageError: {exc}", file=sys.stderr)
        return 2
    for name, st in sorted(report.items()):
        print(
            f"{name}: {st['pairs']} pair(s); {st['copied']} file(s) copied, {st['same']} "
            f"already there, {st['renamed']} renamed"
        )
    print(f"{len(report)} session(s) in {args.out}")
    return 0
