"""The usage log: `<logs_dir>/usage.jsonl`, one whole line per record, rotated as it goes.

The writer appends each record as a single `write()` on an O_APPEND descriptor, so lines are whole
and never interleaved, and it is synchronous on purpose: it can run inside a `finally` of a cancelled
handler, where awaiting is no longer possible.

Reading it back: `usage_files(path)` names the files a file or logs folder stands for (the rotated
copies oldest first, then the current file), and `usage_records(paths)` reads them with the one
JSON Lines reader (`proxy.core.jsonl`).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from proxy.core.jsonl import Records
from proxy.core.record import USAGE_FILE, record_line

KEEP_ROTATED = 5


class UsageWriter:
    """Appends records to `<logs_dir>/usage.jsonl`, one whole line per write, rotating as it goes.

    Rotation (keep `keep` old files: `.1` newest … `.5` oldest) happens before a write when the file
    has reached `max_bytes` or is older than `max_age` seconds. When someone else rotated the file
    (`ccp logs-rotate` from another process), the writer notices the path no longer names its file and
    reopens, so a record is never written to a file that was moved away after the check.
    """

    def __init__(
        self,
        logs_dir: str | os.PathLike,
        max_bytes: int | None = None,
        max_age: float | None = None,
        keep: int = KEEP_ROTATED,
        on_rotate: Callable[[], None] | None = None,
    ) -> None:
        self.path = Path(logs_dir) / USAGE_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._spath = str(self.path)
        self.max_bytes = max_bytes
        self.max_age = max_age
        self.keep = keep
        self.on_rotate = on_rotate
        self.written = 0
        self.rotations = 0
        self._lock = threading.Lock()
        self._fd = -1
        self._open()

    def _open(self) -> None:
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        st = os.fstat(self._fd)
        self._ino = st.st_ino
        self._size = st.st_size
        # a file that already has lines keeps its age across restarts (mtime of its first write is
        # not kept by the OS, so the oldest we can know is its change time)
        self._born = time.time() if st.st_size == 0 else min(time.time(), st.st_ctime)

    def _moved_away(self) -> bool:
        try:
            return os.stat(self._spath).st_ino != self._ino
        except FileNotFoundError:
            return True

    def _due(self, incoming: int) -> bool:
        if self._size == 0:
            return False
        if self.max_bytes is not None and self._size + incoming > self.max_bytes:
            return True
        return self.max_age is not None and time.time() - self._born >= self.max_age

    def rotate(self) -> Path | None:
        """Rotate now (also what `ccp logs-rotate` does to a running shim's file)."""
        with self._lock:
            return self._rotate_locked()

    def _rotate_locked(self) -> Path | None:
        os.close(self._fd)
        rotated = rotate_usage(self.path.parent, self.keep)
        self._open()
        if rotated is not None:
            self.rotations += 1
            if self.on_rotate is not None:
                self.on_rotate()
        return rotated

    def write(self, record: Mapping[str, Any]) -> bytes:
        """Append the record's line; returns the line (the store keeps the same text)."""
        line = record_line(record)
        with self._lock:
            if self._moved_away():
                os.close(self._fd)
                self._open()
            if self._due(len(line)):
                self._rotate_locked()
            n = os.write(self._fd, line)
            if n < len(line):  # a short write (a signal, a full disk): the rest, as it goes
                view = memoryview(line)[n:]
                while view:
                    view = view[os.write(self._fd, view) :]
            self._size += len(line)
            self.written += 1
        return line

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1


def rotate_usage(logs_dir: str | os.PathLike, keep: int = KEEP_ROTATED) -> Path | None:
    """Shift usage.jsonl -> .1 -> .2 … (keeping `keep`); returns the new .1 or None if nothing to do.

    Safe while a shim writes: its writer sees the file moved and reopens a fresh one.
    """
    path = Path(logs_dir) / USAGE_FILE
    if not path.exists() or path.stat().st_size == 0:
        return None
    oldest = path.with_name(f"{USAGE_FILE}.{keep}")
    oldest.unlink(missing_ok=True)
    for n in range(keep - 1, 0, -1):
        src = path.with_name(f"{USAGE_FILE}.{n}")
        if src.exists():
            src.rename(path.with_name(f"{USAGE_FILE}.{n + 1}"))
    first = path.with_name(f"{USAGE_FILE}.1")
    path.rename(first)
    return first


PathLike = str | os.PathLike


def rotated_copies(folder: PathLike) -> list[Path]:
    """The rotated copies in a logs folder that exist, oldest first (`usage.jsonl.5` … `.1`)."""
    p = Path(folder)
    names = [f"{USAGE_FILE}.{i}" for i in range(KEEP_ROTATED, 0, -1)]
    return [p / name for name in names if (p / name).is_file()] if p.is_dir() else []


def usage_files(path: PathLike, rotated: bool = True) -> list[Path]:
    """The usage files a path stands for, oldest first.

    A file stands for itself; a folder stands for `usage.jsonl.5` … `usage.jsonl.1`, `usage.jsonl`
    (those that exist), or for `usage.jsonl` alone with `rotated=False`. A missing path raises
    FileNotFoundError.
    """
    p = Path(path)
    if p.is_dir():
        current = [p / USAGE_FILE] if (p / USAGE_FILE).is_file() else []
        return (rotated_copies(p) if rotated else []) + current
    if p.is_file():
        return [p]
    raise FileNotFoundError(f"no such usage log or logs folder: {p}")


def usage_records(
    paths: PathLike | Iterable[PathLike], rotated: bool = True
) -> tuple[list[dict], int]:
    """Every record of the usage files these files and/or logs folders stand for (`usage_files`),
    oldest first, and the number of lines that were not a record (control changes are records)."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    records: list[dict] = []
    bad = 0
    for f in [f for p in paths for f in usage_files(p, rotated)]:
        with open(f, encoding="utf-8", errors="replace") as fh:
            reader = Records(fh)
            records += reader
        bad += reader.bad
    return records, bad
