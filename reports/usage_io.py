"""Loading usage records: the only part of the reports that reads log files.

`read_records(paths)` turns usage files (or logs folders) into plain dicts and counts the lines it
could not use (`proxy.sinks.usage_log.usage_records` names and reads the files, with the one JSON
Lines reader); `read_usage(paths)` does the same into a pandas DataFrame with one column per usage
field and the `sse` object flattened into `sse_*` columns. Everything downstream (summaries, gates)
is pure and works on what these return. A folder stands for its current log and the rotated copies
(`rotated=True`, what summaries and gates read) or for its current log alone (`rotated=False`, what
`ccp report` reads unless asked); `rotated_copies(folder)` names the copies a folder holds.
"""
from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from proxy.core.record import CONTROL_OP, FIELDS
from proxy.sinks.usage_log import (  # noqa: F401 - rotated_copies, usage_files: re-exported
    PathLike,
    rotated_copies,
    usage_files,
    usage_records,
)

SSE_COLUMNS = ("sse_events", "sse_bytes", "sse_duration_ms", "sse_complete")
# header_mode is only written on zai records, so it is not in FIELDS; sse is flattened.
COLUMNS = tuple(f for f in FIELDS if f != "sse") + ("header_mode",) + SSE_COLUMNS
# Older writers (and the Anthropic API itself) spell the cache counters out in full.
_TOKEN_ALIASES = {
    "cache_read_tokens": "cache_read_input_tokens",
    "cache_creation_tokens": "cache_creation_input_tokens",
}


def read_records(paths: PathLike | Iterable[PathLike], rotated: bool = True) -> tuple[list[dict], int]:
    """Read usage records from files and/or logs folders; return (records, bad line count). A
    control change is no request: it is left out, and counted with the bad lines."""
    everything, bad = usage_records(paths, rotated)
    records = [r for r in everything if r.get("op") != CONTROL_OP]
    return records, bad + len(everything) - len(records)


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
