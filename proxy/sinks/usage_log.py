"""The usage log: `<logs_dir>/usage.jsonl`, one whole line per record, rotated as it goes.

The writer appends each record as a single `write()` on an O_APPEND descriptor, so lines are whole
and never interleaved, and it is synchronous on purpose: it can run inside a `finally` of a cancelled
handler, where awaiting is no longer possible.

A disk that refuses a write (full, read-only, a file-size limit) never fails the request: the line
is not written at all (a short write is cut back off), the writer's `health` counts and logs it
(proxy.sinks.health), and the next record tries again. `check_writable(logs_dir)` is what `ccp serve`
asks before it starts: a logs folder it cannot write at all is a ConfigError, not a shim that counts
every record as lost.

Reading it back: `usage_files(path)` names the files a file or logs folder stands for (the rotated
copies oldest first, then the current file), and `usage_records(paths)` reads them with the one
JSON Lines reader (`proxy.core.jsonl`); `records_backwards(logs_dir)` reads the newest records first,
for whoever needs only the end of a big log (the store's reconciliation at start).
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from proxy.core.jsonl import Records, record_of
from proxy.core.parse import ConfigError
from proxy.core.record import USAGE_FILE, record_line
from proxy.sinks.health import USAGE_LOG, SinkHealth

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
        health: SinkHealth | None = None,
    ) -> None:
        self.path = Path(logs_dir) / USAGE_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._spath = str(self.path)
        self.max_bytes = max_bytes
        self.max_age = max_age
        self.keep = keep
        self.on_rotate = on_rotate
        self.health = health if health is not None else SinkHealth(USAGE_LOG)
        if not self.health.where:
            self.health.where = self._spath
        self.written = 0
        self.rotations = 0
        self._lock = threading.Lock()
        self._fd = -1
        # the file ends in the middle of a line (a failed write that could not be rolled back, or a
        # machine that stopped mid-write): the next line starts with a newline, so that one torn
        # line never swallows a whole record
        self._torn = False
        self._open()

    def _open(self) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        st = os.fstat(fd)
        self._fd = fd
        self._ino = st.st_ino
        self._size = st.st_size
        # a file that already has lines keeps its age across restarts (mtime of its first write is
        # not kept by the OS, so the oldest we can know is its change time)
        self._born = time.time() if st.st_size == 0 else min(time.time(), st.st_ctime)
        self._torn = st.st_size > 0 and not _ends_a_line(self._spath, st.st_size)

    def _reopen(self) -> None:
        """Open the path again (it was moved away, or a failed open left no descriptor)."""
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            with contextlib.suppress(OSError):
                os.close(fd)
        self._open()

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
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            with contextlib.suppress(OSError):
                os.close(fd)
        try:
            rotated = rotate_usage(self.path.parent, self.keep)
        finally:
            self._reopen()  # a rotation that failed still leaves the writer a file to write to
        if rotated is not None:
            self.rotations += 1
            if self.on_rotate is not None:
                self.on_rotate()
        return rotated

    def write(self, record: Mapping[str, Any]) -> bytes | None:
        """Append the record's line; returns the line (the store keeps the same text).

        Never raises for the disk: a line that cannot be written (a full disk, a read-only folder, a
        file-size limit) is not written at all (never half of it), is counted and logged by
        `self.health`, and None is returned; the next write tries again, so writing resumes by itself
        when the disk has room again."""
        line = record_line(record)
        with self._lock:
            try:
                self._append(line)
            except OSError as exc:
                self.health.failed(exc)
                return None
            self.written += 1
        if self.health.degraded is not None:  # (read here: no call into health per request)
            self.health.ok()
        return line

    def _append(self, line: bytes) -> None:
        if self._fd < 0 or self._moved_away():
            self._reopen()
        if self._due(len(line)):
            self._rotate_locked()
        data = b"\n" + line if self._torn else line
        done = 0
        try:
            done = os.write(self._fd, data)
            if done < len(data):  # a short write (a signal, a full disk): the rest, as it goes
                view = memoryview(data)
                while done < len(data):
                    done += os.write(self._fd, view[done:])
        except OSError:
            if done:
                self._roll_back(done)
            raise
        self._size += len(data)
        self._torn = False

    def _roll_back(self, done: int) -> None:
        """Take back the `done` bytes a failed write left (the start of a line): the file ends with
        its last whole line again. A file that cannot be cut (a read-only remount) stays torn, and
        the next line starts on a line of its own."""
        try:
            os.ftruncate(self._fd, os.fstat(self._fd).st_size - done)
        except OSError:
            self._torn = True
            self._size += done

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1


def _ends_a_line(path: str, size: int) -> bool:
    """Whether the file's last byte is a newline (read once per open, never per write)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(size - 1)
            return fh.read(1) in (b"\n", b"")
    except OSError:
        return True  # unreadable: nothing to repair that we could know of


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


BACK_BLOCK = 1 << 16  # records_backwards reads a file from its end this much at a time


def _lines_backwards(path: Path) -> Iterator[bytes]:
    """The lines of a file, last first (blocks from the end: never the whole file in memory)."""
    with open(path, "rb") as fh:
        end = fh.seek(0, os.SEEK_END)
        head = b""  # the start of a line whose beginning is in the block before
        while end > 0:
            start = max(0, end - BACK_BLOCK)
            fh.seek(start)
            lines = (fh.read(end - start) + head).split(b"\n")
            end = start
            head = lines[0]
            yield from reversed(lines[1:])
        if head:
            yield head


def records_backwards(logs_dir: PathLike) -> Iterator[dict]:
    """The records of a logs folder, newest first: usage.jsonl from its end, then usage.jsonl.1, .2 …
    Lines that are not a record (blank, torn, garbled) are skipped. A consumer that stops early
    reads only the end of the log, however big it is."""
    files = list(reversed(usage_files(logs_dir))) if Path(logs_dir).is_dir() else []
    for f in files:
        try:
            lines = _lines_backwards(f)
            for line in lines:
                if line.strip():
                    rec = record_of(line)
                    if rec is not None:
                        yield rec
        except FileNotFoundError:  # rotated away meanwhile (another process): the next one
            continue


def check_writable(logs_dir: PathLike) -> None:
    """ConfigError (one line) when the logs folder cannot be written: made if missing, the usage
    log opened for appending, a file created and removed in it (what rotation, partials and
    trajectories need). A full disk is not such an error: the shim starts and degrades."""
    folder = Path(logs_dir)
    probe = folder / f".ccp-write-check-{os.getpid()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        os.close(os.open(folder / USAGE_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644))
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        probe.unlink()
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return
        raise ConfigError(
            f"CCP_LOGS_DIR={folder} cannot be written ({exc.strerror or exc}): the shim keeps "
            f"its usage log there; make it writable or point CCP_LOGS_DIR at another folder"
        ) from exc
