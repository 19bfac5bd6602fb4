"""Loading usage records: the only part of the reports that reads log files.

`read_records(paths)` turns usage files (or logs folders) into plain dicts and counts the lines it
could not use; `read_usage(paths)` does the same into a pandas DataFrame with one column per usage
field and the `sse` object flattened into `sse_*` columns. Everything downstream (summaries, gates)
is pure and works on what these return. A folder stands for its current log and the rotated copies
(`rotated=True`, what summaries and gates read) or for its current log alone (`rotated=False`, what
`ccp report` reads unless asked); `rotated_copies(folder)` names the copies a folder holds.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable

import pandas as pd

from proxy.core.record import CONTROL_OP, FIELDS, USAGE_FILE

KEEP_ROTATED = 5
SSE_COLUMNS = ("sse_events", "sse_bytes", "sse_duration_ms", "sse_complete")
# header_mode is only written on zai records, so it is not in FIELDS; sse is flattened.
COLUMNS = tuple(f for f in FIELDS if f != "sse") + ("header_mode",) + SSE_COLUMNS
# Older writers (and the Anthropic API itself) spell the cache counters out in full.
_TOKEN_ALIASES = {
    "cache_read_tokens": "cache_read_input_tokens",
    "cache_creation_tokens": "cache_creation_input_tokens",
}

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


def _parse_lines(lines: Iterable[str]) -> tuple[list[dict], int]:
    records: list[dict] = []
    bad = 0
    for line in lines:
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            bad += 1  # a torn or garbled line, e.g. the tail of a crash
            continue
        if isinstance(obj, dict) and obj.get("op") != CONTROL_OP:  # a control change: no request
            records.append(obj)
        else:
            bad += 1
    return records, bad


def read_records(paths: PathLike | Iterable[PathLike], rotated: bool = True) -> tuple[list[dict], int]:
    """Read usage records from files and/or logs folders; return (records, bad line count)."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    files = [f for p in paths for f in usage_files(p, rotated)]
    records: list[dict] = []
    bad = 0
    for f in files:
        with open(f, encoding="utf-8", errors="replace") as fh:
            got, n_bad = _parse_lines(fh)
        records += got
        bad += n_bad
    return records, bad


def _row(record: dict) -> dict:
    row = {col: record.get(col) for col in COLUMNS}
    for name, alias in _TOKEN_ALIASES.items():
        if row[name] is None:
            row[name] = record.get(alias)
    sse = record.get("sse")
    if isinstance(sse, dict):
        row["sse_events"] = sse.get("events")
        row["sse_bytes"] = sse.get("bytes")
        row["sse_duration_ms"] = sse.get("duration_ms")
        row["sse_complete"] = sse.get("complete")
    return row


def to_frame(records: list[dict], bad_lines: int = 0) -> pd.DataFrame:
    """Records as a DataFrame with exactly COLUMNS; `df.attrs["bad_lines"]` carries the count."""
    df = pd.DataFrame([_row(r) for r in records], columns=list(COLUMNS))
    df.attrs["bad_lines"] = int(bad_lines)
    return df


def read_usage(paths: PathLike | Iterable[PathLike], rotated: bool = True) -> pd.DataFrame:
    """Usage records from files and/or logs folders as a DataFrame (see `to_frame`)."""
    records, bad = read_records(paths, rotated)
    return to_frame(records, bad)
