"""Partials: what a broken stream had relayed when it broke, kept for a person to look at.

A stream that ends abnormally (upstream reset or timeout, idle cut, client gone, no `message_stop`)
leaves `logs/partials/<rid>.partial`: the bytes the client was sent, in order, with every configured
secret masked. The record's `partial` field names the file. `ccp partials` lists them and
`ccp partials clean [--older-than 7d]` prunes them.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Iterable
from pathlib import Path

from proxy.config.load import load_settings
from proxy.core.redact import MIN_SECRET_LEN, mask
from proxy.sinks.health import write_whole

PARTIALS_DIR = "partials"
KEEP_BYTES = 8 * 1024 * 1024  # a partial keeps at most this much of the stream (the start of it)


def partials_dir(logs_dir: str | os.PathLike) -> Path:
    return Path(logs_dir) / PARTIALS_DIR


def redact_bytes(data: bytes, secrets: Iterable[str]) -> bytes:
    for secret in sorted(
        {s for s in secrets if s and len(s) >= MIN_SECRET_LEN}, key=len, reverse=True
    ):
        data = data.replace(secret.encode(), mask(secret).encode())
    return data


def write_partial(
    logs_dir: str | os.PathLike, rid: str, chunks: Iterable[bytes], secrets: Iterable[str]
) -> Path:
    folder = partials_dir(logs_dir)
    folder.mkdir(parents=True, exist_ok=True)
    # whole or not at all: a full disk never leaves half a partial under its name
    return write_whole(folder / f"{rid}.partial", redact_bytes(b"".join(chunks), secrets))


def list_partials(logs_dir: str | os.PathLike) -> list[dict]:
    folder = partials_dir(logs_dir)
    out = []
    for path in sorted(folder.glob("*.partial")) if folder.is_dir() else []:
        st = path.stat()
        out.append({"rid": path.stem, "path": str(path), "bytes": st.st_size, "mtime": st.st_mtime})
    return out


def clean_partials(
    logs_dir: str | os.PathLike, older_than: float | None = None, now: float | None = None
) -> int:
    """Remove partials (only those older than `older_than` seconds, when given); returns how many."""
    now = time.time() if now is None else now
    removed = 0
    for item in list_partials(logs_dir):
        if older_than is None or now - item["mtime"] >= older_than:
            Path(item["path"]).unlink(missing_ok=True)
            removed += 1
    return removed


def main(argv: list[str] | None = None) -> int:
    from proxy.core.parse import parse_duration

    parser = argparse.ArgumentParser(
        prog="ccp partials",
        description="Broken streams kept under logs/partials: list them, or `clean` them.",
    )
    parser.add_argument(
        "action",
        nargs="?",
        choices=("list", "clean"),
        default="list",
        help="list the kept partial streams (default) or clean (delete) them",
    )
    parser.add_argument("--older-than", help="clean: only partials older than this (e.g. 7d, 12h)")
    parser.add_argument("--json", action="store_true", help="one JSON object per partial")
    args = parser.parse_args(argv)
    logs_dir = load_settings().logs_dir
    if args.action == "clean":
        older = None
        if args.older_than:
            raw = args.older_than.strip()
            older = (
                float(raw[:-1]) * 86400
                if raw.endswith("d")
                else parse_duration("--older-than", raw)
            )
        n = clean_partials(logs_dir, older)
        print(f"removed {n} partial(s) from {partials_dir(logs_dir)}")
        return 0
    items = list_partials(logs_dir)
    if args.json:
        print(json.dumps(items, indent=2))
        return 0
    if not items:
        print(f"no partials in {partials_dir(logs_dir)}")
        return 0
    for item in items:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(item["mtime"]))
        print(f"{when}  {item['rid']:<20} {item['bytes']:>10} B  {item['path']}")
    return 0
