"""Reading JSON Lines (`usage.jsonl` and its kind): the one reader of lines into records. Pure: it
takes lines (str or bytes, from a file, a socket, a list) and never opens anything; the files are
opened by `proxy.sinks.usage_log.usage_records`.

`Records(lines)` gives each line's JSON object in order and counts in `bad` the lines that were not
one: garbled, not an object, or torn (the last line of a file whose writer stopped mid-line). Blank
lines are neither. `record_of(line)` reads one line the same way.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator


def record_of(line: str | bytes) -> dict | None:
    """The JSON object on one line, or None (blank, garbled, torn or not an object)."""
    try:
        obj = json.loads(line)
    except ValueError:  # (also a UnicodeDecodeError of bytes that are not UTF-8)
        return None
    return obj if isinstance(obj, dict) else None


class Records:
    """The JSON objects of `lines`, in order; `bad` counts the non-blank lines that were none (so
    far: it is final once the iteration is done)."""

    __slots__ = ("_lines", "bad")

    def __init__(self, lines: Iterable[str | bytes]) -> None:
        self._lines = lines
        self.bad = 0

    def __iter__(self) -> Iterator[dict]:
        for line in self._lines:
            if not line.strip():
                continue
            obj = record_of(line)
            if obj is None:
                self.bad += 1
                continue
            yield obj
