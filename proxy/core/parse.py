"""The one set of parsers for what operators type: booleans, durations and spans, sizes, counts, URLs.

Environment variables, quota files, licence invites, `ccp` options and admin queries all read
their values here, so `30s`, `5h` or `on` mean the same thing wherever they are typed. Each parser
takes the name the value came under (a variable, a file position) and raises `ConfigError` with a
message that names it and the value; a caller with its own error type wraps that message.
"""

from __future__ import annotations

import re
from typing import Any


class ConfigError(ValueError):
    """A setting has a value ccp cannot use; the message names the key and the value."""


TRUE = frozenset({"1", "true", "yes", "on"})
FALSE = frozenset({"0", "false", "no", "off"})

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
DURATION_UNITS = {
    None: 1.0,
    "ms": 0.001,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 7 * 86400.0,
}
_SIZE_RE = re.compile(r"^\s*(\d+)\s*(b|kb|k|kib|mb|m|mib|gb|g|gib)?\s*$", re.IGNORECASE)
SIZE_UNITS = {
    None: 1,
    "b": 1,
    "k": 1024,
    "kb": 1024,
    "kib": 1024,
    "m": 1024**2,
    "mb": 1024**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gb": 1024**3,
    "gib": 1024**3,
}
_URL_RE = re.compile(r"^https?://[^/\s]+")


def truthy(raw: str | None) -> bool:
    """Whether an optional switch is on (1/true/yes/on); anything else, or nothing, is off."""
    return raw is not None and raw.strip().lower() in TRUE


def parse_bool(key: str, raw: str) -> bool:
    """A switch that must be one of 1/0, true/false, yes/no, on/off ('' is off)."""
    value = raw.strip().lower()
    if value in TRUE:
        return True
    if value in FALSE or value == "":
        return False
    raise ConfigError(f"{key}={raw!r}: expected 1/0, true/false, yes/no or on/off")


def parse_duration(
    key: str, raw: Any, expected: str = "a duration such as 30s, 250ms, 2m or 1h"
) -> float:
    """Seconds, greater than zero, from 30, '30s', '250ms', '15m', '5h', '7d' or '1w'."""
    m = _DURATION_RE.match(str(raw))
    if not m:
        raise ConfigError(f"{key}={raw!r}: expected {expected}")
    seconds = float(m.group(1)) * DURATION_UNITS[m.group(2)]
    if seconds <= 0:
        raise ConfigError(f"{key}={raw!r}: must be greater than zero")
    return seconds


def parse_size(key: str, raw: str) -> int:
    """Bytes, greater than zero, from '1048576', '20MB' or '512KiB'."""
    m = _SIZE_RE.match(raw)
    if not m:
        raise ConfigError(f"{key}={raw!r}: expected a size such as 20MB or 1048576")
    unit = m.group(2).lower() if m.group(2) else None
    size = int(m.group(1)) * SIZE_UNITS[unit]
    if size <= 0:
        raise ConfigError(f"{key}={raw!r}: must be greater than zero")
    return size


def parse_count(key: str, raw: str) -> int:
    """A whole number of zero or more."""
    value = raw.strip()
    if not value.isdigit():
        raise ConfigError(f"{key}={raw!r}: expected a whole number (0, 1, 2, ...)")
    return int(value)


def parse_choice(key: str, raw: str, choices: tuple[str, ...]) -> str:
    """One of `choices` (case-insensitive)."""
    value = raw.strip().lower()
    if value not in choices:
        raise ConfigError(f"{key}={raw!r}: expected one of {', '.join(choices)}")
    return value


def parse_base_url(key: str, raw: str) -> str:
    """An http:// or https:// URL, without a trailing slash."""
    value = raw.strip().rstrip("/")
    if not _URL_RE.match(value):
        raise ConfigError(f"{key}={raw!r}: expected an http:// or https:// URL")
    return value
