"""`ccp logs`: usage records as one readable line each, and a tail that survives rotation.

`format_record()` turns a record into styled pieces (rich colours on a terminal, plain text
otherwise); `follow()` tails `usage.jsonl` through rotation and re-creation until told to stop.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from proxy.config.load import load_settings
from proxy.config.profiles import RunFiles
from proxy.core.jsonl import record_of

_STYLES = {"zai": "cyan", "anthropic": "magenta", "ok": "green", "bad": "bold red"}


def _ms(value: object) -> str:
    return f"{value:.0f}ms" if isinstance(value, (int, float)) else "-"


def _v(value: object) -> str:
    return "-" if value is None or value == "" else str(value)


def format_record(rec: dict) -> list[tuple[str, str | None]]:
    """A usage record as (text, style) pieces of one readable line."""
    ts = str(rec.get("ts") or "")
    when = f"{ts[5:10]} {ts[11:23]}" if len(ts) >= 23 else ts or "-"
    status, err = rec.get("status"), rec.get("err_type")
    bad = bool(err) or not isinstance(status, int) or status >= 400
    sse = rec.get("sse") if isinstance(rec.get("sse"), dict) else None
    if sse:
        done = "complete" if sse.get("complete") else "INCOMPLETE"
        sse_text = f"sse {sse.get('events', 0)}ev {done}"
    else:
        sse_text = "sse -"
    lane = _v(rec.get("lane"))
    return [
        (f"{when} {_v(rec.get('rid'))} ", None),
        (f"{lane:<9} ", _STYLES.get(lane, "yellow")),
        (f"{_v(rec.get('decision')):<14} {_v(rec.get('model')):<28} {_v(rec.get('op')):<9} ", None),
        (f"{_v(status)} {_v(err)}", _STYLES["bad" if bad else "ok"]),
        (
            f" {_ms(rec.get('latency_ms'))} ttfb {_ms(rec.get('ttfb_ms'))} "
            f"tok {_v(rec.get('in_tokens'))}/{_v(rec.get('out_tokens'))} ",
            None,
        ),
        (sse_text, _STYLES["bad"] if sse and not sse.get("complete") else None),
    ]


def format_line(line: str) -> list[tuple[str, str | None]]:
    rec = record_of(line)
    if rec is None:
        return [(f"(unreadable) {line.rstrip()[:200]}", "dim")]
    return format_record(rec)


class _Printer:
    """Plain text, or rich colours when stdout is a terminal."""

    def __init__(self, out: TextIO, raw: bool) -> None:
        self.out, self.raw, self.console = out, raw, None
        if not raw and out.isatty():
            from rich.console import Console

            self.console = Console(file=out, highlight=False, soft_wrap=True)

    def line(self, line: str) -> None:
        if not line.strip():
            return
        if self.raw:
            self.out.write(line if line.endswith("\n") else line + "\n")
        elif self.console is not None:
            from rich.text import Text

            # (a None style is plain text: Text.append's own default; the stub wants str | Style)
            self.console.print(Text.assemble(*format_line(line)))  # type: ignore[arg-type]
        else:
            self.out.write("".join(text for text, _ in format_line(line)) + "\n")
        self.out.flush()


def last_lines(path: Path, n: int) -> list[str]:
    if not path.exists() or n <= 0:
        return []
    with open(path, encoding="utf-8", errors="replace") as fh:
        return list(deque(fh, maxlen=n))


def follow(path: Path, start: int, stop_at: float | None) -> Iterator[str]:
    """Whole lines appended to `path` after offset `start`; survives rotation and recreation."""
    fh: TextIO | None = None
    ino: int | None = None
    pos, partial = start, ""

    def drain() -> Iterator[str]:
        nonlocal pos, partial
        if fh is None:
            return
        chunk = fh.read()
        if chunk:
            pos = fh.tell()
            lines = (partial + chunk).split("\n")
            partial = lines.pop()
            yield from (line + "\n" for line in lines)

    try:
        while stop_at is None or time.monotonic() < stop_at:
            try:
                st = path.stat()
            except FileNotFoundError:
                st = None
            if st is not None and (st.st_ino != ino or st.st_size < pos):
                if fh is not None:  # rotated or truncated: finish the old file, then start over
                    yield from drain()
                    if partial:
                        yield partial + "\n"
                    fh.close()
                    pos, partial = 0, ""
                fh, ino = open(path, encoding="utf-8", errors="replace"), st.st_ino
                fh.seek(pos)
            before = pos
            yield from drain()
            if pos == before:
                time.sleep(0.2)  # a tail's poll interval, not a synchronisation
    finally:
        if fh is not None:
            fh.close()


def logs_main(argv: list[str], out: TextIO | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ccp logs",
        description="Usage records, one readable "
        "line each (time rid lane decision model op status err_type "
        "latency ttfb tokens sse).",
    )
    parser.add_argument("-n", type=int, default=20, help="show the last N records (default 20)")
    parser.add_argument("-f", "--follow", action="store_true", help="keep tailing until Ctrl-C")
    parser.add_argument("--raw", action="store_true", help="the JSON lines as written")
    parser.add_argument(
        "--max-seconds", type=float, default=None, help="stop following after this many seconds"
    )
    parser.add_argument("--file", help="a usage file (default: <logs>/usage.jsonl)")
    args = parser.parse_args(argv)
    settings = load_settings()
    out = sys.stdout if out is None else out
    path = Path(args.file) if args.file else RunFiles(Path(settings.logs_dir)).usage
    printer = _Printer(out, args.raw)
    for line in last_lines(path, args.n):
        printer.line(line)
    if not args.follow:
        if not path.exists():
            print(f"ccp logs: no usage records yet in {path}", file=sys.stderr)
        return 0
    start = path.stat().st_size if path.exists() else 0
    stop_at = None if args.max_seconds is None else time.monotonic() + args.max_seconds
    with contextlib.suppress(KeyboardInterrupt):
        for line in follow(path, start, stop_at):
            printer.line(line)
    return 0
