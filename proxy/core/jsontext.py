"""JSON text as UTF-8 bytes, also when a string holds a lone UTF-16 surrogate: pure, no I/O.

JSON may spell any code unit as an escape, `"\\ud800"` too, and json.loads reads it as a lone
surrogate, which no UTF-8 encoder writes (`str.encode` raises, orjson refuses it). Everything the
shim writes from a client's JSON (a converted body, a record line, a trajectory, the body tee) goes
through `utf8()`: the text is encoded as it is, and only when that fails is each lone surrogate
written back as the escape it came as, which keeps the line valid JSON of the same value.
"""

from __future__ import annotations

import json
import re

_SURROGATE = re.compile("[\ud800-\udfff]")


def _escape(match: re.Match) -> str:
    return f"\\u{ord(match.group()):04x}"


def escape_surrogates(text: str) -> str:
    """JSON text with each surrogate code point written as its `\\uXXXX` escape (in JSON text a
    surrogate can only be inside a string literal, where an escape means the same)."""
    return _SURROGATE.sub(_escape, text)


def utf8(text: str) -> bytes:
    """JSON text as UTF-8: as it is, or with its lone surrogates escaped (`escape_surrogates`)."""
    try:
        return text.encode()
    except UnicodeEncodeError:
        return escape_surrogates(text).encode()


def dumps(value: object, **options) -> bytes:
    """`json.dumps(value, ensure_ascii=False, **options)` as UTF-8 bytes, surrogates escaped."""
    return utf8(json.dumps(value, ensure_ascii=False, **options))


def safe_str(text: str) -> str:
    """A string UTF-8 can encode: lone surrogates become the text of their escape (`\\ud800`), for
    values written outside JSON strings' own escaping (a database column, a log line)."""
    if text.isascii():
        return text
    try:
        text.encode()
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode()
    return text
