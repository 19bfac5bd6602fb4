"""Quota configuration: the quotas file and the reroute modes (the book is proxy.sinks.quotas).

The quotas file (YAML; `CCP_QUOTAS_FILE`, else `<config home>/quotas.yaml`, else `configs/quotas.yaml`)::

    quotas:                       # (the top-level mapping may also be the quotas themselves)
      haiku:                      # a family (haiku | sonnet | opus), a model id, or a glob
        rolling: {window: 5h, tokens: 2000000}
        weekly: {tokens: 40000000}   # window: 7d unless given
        warn_pct: 80
        fallback_lane: anthropic  # where a blocked request goes (default anthropic)
        cooldown: 15m             # how long a block holds at least (after 100 % or a real 429)
        lane: zai                 # optional: count only records served on this lane

Reroute modes (`CCP_REROUTE_MODE`, applied by the pure `apply_quota()` to a `to_zai` decision):
  - `block` (default): a blocked lane → the fallback lane, decision `quota_block`;
  - `warn_first`: the budget is an estimate, so while only the estimate says "blocked" the request
    still tries the preferred lane once more, decision `quota_warn_attempt`; after a real 429 (the
    cooldown holds) it is rerouted, `quota_block`. Each 429 also calibrates `warn_pct_auto`;
  - `early`: reroute already at `warn` (`quota_block`);
  - `off`: report only, never reroute.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from proxy.core.parse import ConfigError, parse_duration
from proxy.core.routing import LANE_ANTHROPIC, model_family

REROUTE_MODES = ("block", "warn_first", "early", "off")
DEFAULT_REROUTE_MODE = "block"
DEFAULT_WARN_PCT = 80.0
DEFAULT_WEEK = 7 * 86400.0
DEFAULT_ROLLING = 5 * 3600.0  # Anthropic's rolling window: the fuel gauge's, when no quota sets one
RATE_WINDOW = 300.0  # seconds behind tokens_per_s
FAMILIES = ("haiku", "sonnet", "opus")
_KEYS = {"rolling", "weekly", "warn_pct", "fallback_lane", "cooldown", "lane"}


class QuotaError(ValueError):
    """The quotas file cannot be used; the message names the file, the key and the value."""


# ---------------------------------------------------------------- config (pure parsing)
@dataclass(frozen=True)
class Quota:
    pattern: str
    rolling_window: float | None = None  # seconds
    rolling_tokens: int | None = None
    weekly_window: float = DEFAULT_WEEK
    weekly_tokens: int | None = None
    warn_pct: float = DEFAULT_WARN_PCT
    fallback_lane: str = LANE_ANTHROPIC
    cooldown: float = 0.0
    lane: str | None = None

    def matches(self, model: str) -> bool:
        if self.pattern in FAMILIES:
            return model_family(model) == self.pattern
        return model == self.pattern or fnmatch.fnmatchcase(model, self.pattern)

    def public(self) -> dict:
        return {
            "pattern": self.pattern,
            "rolling": (
                {"window_s": self.rolling_window, "tokens": self.rolling_tokens}
                if self.rolling_tokens
                else None
            ),
            "weekly": (
                {"window_s": self.weekly_window, "tokens": self.weekly_tokens}
                if self.weekly_tokens
                else None
            ),
            "warn_pct": self.warn_pct,
            "fallback_lane": self.fallback_lane,
            "cooldown_s": self.cooldown,
            "lane": self.lane,
        }


@dataclass(frozen=True)
class QuotaConfig:
    quotas: tuple[Quota, ...] = ()
    source: str | None = None  # the file it came from (None: no quotas)

    def match(self, model: str | None) -> Quota | None:
        """Exact ids first, then families and globs in file order."""
        if not model:
            return None
        for q in self.quotas:
            if q.pattern == model:
                return q
        return next((q for q in self.quotas if q.matches(model)), None)

    def public(self) -> dict:
        return {"source": self.source, "quotas": [q.public() for q in self.quotas]}


def parse_span(where: str, raw: Any) -> float:
    """Seconds from 300, '30s', '15m', '5h', '7d' or '1w'."""
    try:
        return parse_duration(where, raw, "a positive span such as 15m, 5h or 7d")
    except ConfigError:
        raise QuotaError(
            f"{where}={raw!r}: expected a positive span such as 15m, 5h or 7d"
        ) from None


def _tokens(where: str, raw: Any) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or raw <= 0:
        raise QuotaError(f"{where}={raw!r}: expected a whole number of tokens greater than zero")
    return raw


def parse_quota(pattern: str, spec: Any, where: str = "quotas") -> Quota:
    """One quota entry; QuotaError names the key and the value."""
    where = f"{where}.{pattern}"
    if not isinstance(spec, dict):
        raise QuotaError(f"{where}: expected a mapping with rolling/weekly budgets")
    unknown = set(spec) - _KEYS
    if unknown:
        raise QuotaError(
            f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))} "
            f"(known: {', '.join(sorted(_KEYS))})"
        )
    kw: dict[str, Any] = {}
    for name in ("rolling", "weekly"):
        block = spec.get(name)
        if block is None:
            continue
        if not isinstance(block, dict) or "tokens" not in block:
            raise QuotaError(f"{where}.{name}: expected {{window: 5h, tokens: N}}")
        kw[f"{name}_tokens"] = _tokens(f"{where}.{name}.tokens", block["tokens"])
        if name == "rolling" and "window" not in block:
            raise QuotaError(f"{where}.rolling.window: missing (e.g. window: 5h)")
        if "window" in block:
            kw[f"{name}_window"] = parse_span(f"{where}.{name}.window", block["window"])
    if "rolling_tokens" not in kw and "weekly_tokens" not in kw:
        raise QuotaError(f"{where}: needs a rolling or a weekly budget")
    if "warn_pct" in spec:
        pct = spec["warn_pct"]
        if isinstance(pct, bool) or not isinstance(pct, (int, float)) or not 0 < pct <= 100:
            raise QuotaError(f"{where}.warn_pct={pct!r}: expected a number in (0, 100]")
        kw["warn_pct"] = float(pct)
    for key in ("fallback_lane", "lane"):
        if key in spec:
            if not isinstance(spec[key], str) or not spec[key].strip():
                raise QuotaError(f"{where}.{key}={spec[key]!r}: expected a lane name")
            kw[key] = spec[key].strip()
    if "cooldown" in spec:
        kw["cooldown"] = parse_span(f"{where}.cooldown", spec["cooldown"])
    return Quota(pattern=pattern, **kw)


def parse_quotas(
    data: Any, source: str | None = None, lanes: Iterable[str] | None = None
) -> QuotaConfig:
    """A QuotaConfig from parsed YAML; `lanes` (known lane names) checks each fallback_lane."""
    where = source or "quotas"
    if data is None:
        return QuotaConfig((), source)
    if not isinstance(data, dict):
        raise QuotaError(f"{where}: expected a mapping of model (or pattern) to budgets")
    entries = data.get("quotas", data) if "quotas" in data else data
    if entries is None:
        entries = {}
    if not isinstance(entries, dict):
        raise QuotaError(f"{where}: `quotas` must map a model (or pattern) to budgets")
    quotas = tuple(parse_quota(str(k), v, where) for k, v in entries.items())
    if lanes is not None:
        known = set(lanes)
        for q in quotas:
            if q.fallback_lane not in known:
                raise QuotaError(
                    f"{where}.{q.pattern}.fallback_lane={q.fallback_lane!r}: no such "
                    f"lane (known: {', '.join(sorted(known))})"
                )
    return QuotaConfig(quotas, source)


def load_quotas(path: str | Path, lanes: Iterable[str] | None = None) -> QuotaConfig:
    """Read and parse a quotas file; QuotaError names the file."""

    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise QuotaError(f"{path}: cannot read: {exc.strerror or exc}") from None
    return quotas_from_text(text, str(path), lanes)


def quotas_from_text(text: str, source: str, lanes: Iterable[str] | None = None) -> QuotaConfig:
    """Parse a quotas file's text (`source` names it in errors); QuotaError names the place."""
    import yaml

    path = source
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:  # where, and the parser's words: never the file's own text
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise QuotaError(f"{path}: not valid YAML{where}: {problem}") from None
    return parse_quotas(data, str(path), lanes)


def book_span(config: QuotaConfig) -> float | None:
    """How far back a book for `config` needs records (None: no quotas, nothing to count)."""
    spans = [
        max(q.weekly_window, q.rolling_window or 0.0, q.cooldown, RATE_WINDOW)
        for q in config.quotas
    ]
    return max(spans) if spans else None


def parse_reroute_mode(raw: str) -> str:
    mode = raw.strip().lower().replace("-", "_") or DEFAULT_REROUTE_MODE
    if mode not in REROUTE_MODES:
        raise ValueError(f"{raw!r}: expected one of {', '.join(REROUTE_MODES)}")
    return mode
