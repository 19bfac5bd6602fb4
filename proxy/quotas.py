"""Quotas: per-model token budgets, the accounting that fills them, and row 4b of the routing table.

Pure: no clock reads (every function takes `now`), no I/O except `load_quotas()`, which reads one file.

The quotas file (YAML; `CCP_QUOTAS_FILE`, else `<config home>/quotas.yaml`, else `configs/quotas.yaml`)::

    quotas:                       # (the top-level mapping may also be the quotas themselves)
      haiku:                      # a family (haiku | sonnet | opus), a model id, or a glob
        rolling: {window: 5h, tokens: 2000000}
        weekly: {tokens: 40000000}   # window: 7d unless given
        warn_pct: 80
        fallback_lane: anthropic  # where a blocked request goes (default anthropic)
        cooldown: 15m             # how long a block holds at least (after 100 % or a real 429)
        lane: zai                 # optional: count only records served on this lane

Accounting (`QuotaBook.account(rec)`): in+out tokens of every finished record whose model matches a
quota (exact ids first, then file order), at the record's own `ts`. Windows slide: the rolling and
the weekly window each count strictly the tokens with `now - span < ts <= now` — nothing older,
whatever the other window holds.

Rebuilding (`QuotaBook.rebuild(config, records)`): a new config gets a book replayed from the stored
records of its own span (`book_span`: the longest window, cooldown or rate window), so a reload that
lengthens a window or adds a quota counts the older records a restart would. Records accounted while
the store is read (`begin_rebuild()` keeps them) are added unless the store already held them (by rid).

Evaluation (`QuotaBook.state(model, now) -> QuotaState`): `warn` at ≥ `warn_pct` of either window,
`block` at ≥ 100 % or while a cooldown holds; `eta_reset` is the seconds until the block lifts (when
blocked) or until the oldest token in the rolling window leaves it; `tokens_per_s` is over the last
five minutes.

Auto-calibration: a 429 (a real limit hit) records how full the budget looked at that moment. The
configured budget may be wrong; `warn_pct_auto` moves the warn threshold by the same ratio (warn at the
same headroom before the *observed* limit): `warn_pct * low_hit_pct / 100`, where `low_hit_pct` is a
conservative low point of the observed hits (mean − one standard deviation). Its `confidence` grows
with the number of hits and shrinks with their spread; with no hit it is None / 0.

Reroute modes (`CCP_REROUTE_MODE`, applied by the pure `apply_quota()` to a `to_zai` decision):
  - `block` (default): a blocked lane → the fallback lane, decision `quota_block`;
  - `warn_first`: the budget is an estimate, so while only the estimate says "blocked" the request
    still tries the preferred lane once more, decision `quota_warn_attempt`; after a real 429 (the
    cooldown holds) it is rerouted, `quota_block`. Each 429 also calibrates `warn_pct_auto`;
  - `early`: reroute already at `warn` (`quota_block`);
  - `off`: report only, never reroute.
"""
from __future__ import annotations

import bisect
import fnmatch
import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, NamedTuple

from proxy.routing import LANE_ANTHROPIC, Decision, model_family

if TYPE_CHECKING:
    from proxy.catalog import Catalog

REROUTE_MODES = ("block", "warn_first", "early", "off")
DEFAULT_REROUTE_MODE = "block"
DEFAULT_WARN_PCT = 80.0
DEFAULT_WEEK = 7 * 86400.0
DEFAULT_ROLLING = 5 * 3600.0  # Anthropic's rolling window: the fuel gauge's, when no quota sets one
RATE_WINDOW = 300.0  # seconds behind tokens_per_s
FAMILIES = ("haiku", "sonnet", "opus")
_SPAN_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)?\s*$")
_SPAN_UNITS = {None: 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 7 * 86400.0}
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
        return {"pattern": self.pattern,
                "rolling": ({"window_s": self.rolling_window, "tokens": self.rolling_tokens}
                            if self.rolling_tokens else None),
                "weekly": ({"window_s": self.weekly_window, "tokens": self.weekly_tokens}
                           if self.weekly_tokens else None),
                "warn_pct": self.warn_pct, "fallback_lane": self.fallback_lane,
                "cooldown_s": self.cooldown, "lane": self.lane}


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
    m = _SPAN_RE.match(str(raw))
    if not m or float(m.group(1)) <= 0:
        raise QuotaError(f"{where}={raw!r}: expected a positive span such as 15m, 5h or 7d")
    return float(m.group(1)) * _SPAN_UNITS[m.group(2)]


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
        raise QuotaError(f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))} "
                         f"(known: {', '.join(sorted(_KEYS))})")
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


def parse_quotas(data: Any, source: str | None = None,
                 lanes: Iterable[str] | None = None) -> QuotaConfig:
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
                raise QuotaError(f"{where}.{q.pattern}.fallback_lane={q.fallback_lane!r}: no such "
                                 f"lane (known: {', '.join(sorted(known))})")
    return QuotaConfig(quotas, source)


def load_quotas(path: str | Path, lanes: Iterable[str] | None = None) -> QuotaConfig:
    """Read and parse a quotas file; QuotaError names the file."""
    import yaml
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise QuotaError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise QuotaError(f"{path}: not valid YAML: {exc}") from None
    return parse_quotas(data, str(path), lanes)


def book_span(config: QuotaConfig) -> float | None:
    """How far back a book for `config` needs records (None: no quotas, nothing to count)."""
    spans = [max(q.weekly_window, q.rolling_window or 0.0, q.cooldown, RATE_WINDOW)
             for q in config.quotas]
    return max(spans) if spans else None


def parse_reroute_mode(raw: str) -> str:
    mode = raw.strip().lower().replace("-", "_") or DEFAULT_REROUTE_MODE
    if mode not in REROUTE_MODES:
        raise ValueError(f"{raw!r}: expected one of {', '.join(REROUTE_MODES)}")
    return mode


# ---------------------------------------------------------------- accounting
def record_time(rec: dict) -> float | None:
    """The epoch seconds of a usage record's `ts` (ISO-8601 UTC), or None."""
    ts = rec.get("ts")
    if isinstance(ts, (int, float)):
        return float(ts)
    if not isinstance(ts, str) or not ts:
        return None
    # the shim's own format (utc_timestamp): the second looked up once, the same float as below
    own = len(ts) == 24 and ts[19] == "." and ts[23] == "Z" and ts[20:23].isdigit()
    prefix, whole = _SECOND[0]
    if own and prefix == ts[:19]:
        return (whole * 1_000_000 + int(ts[20:23]) * 1000) / 1_000_000
    try:
        t = datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
    if own:  # one second kept (records arrive in time order), replaced whole: safe across threads
        _SECOND[0] = (ts[:19], int(datetime.fromisoformat(ts[:19] + "+00:00").timestamp()))
    return t


_SECOND: list[tuple[str, int]] = [("", 0)]  # ("YYYY-MM-DDTHH:MM:SS", its epoch second)


def record_tokens(rec: dict) -> int:
    return sum(v for v in (rec.get("in_tokens"), rec.get("out_tokens"))
               if isinstance(v, int) and not isinstance(v, bool))


def is_limit_hit(rec: dict) -> bool:
    return rec.get("status") == 429 or rec.get("upstream_status") == 429


class _Series:
    """Token events in time order with prefix sums: window sums in O(log n)."""

    __slots__ = ("ts", "cum")

    def __init__(self) -> None:
        self.ts: list[float] = []
        self.cum: list[int] = [0]

    def add(self, t: float, n: int) -> None:
        if not self.ts or t >= self.ts[-1]:
            self.ts.append(t)
            self.cum.append(self.cum[-1] + n)
            return
        i = bisect.bisect_right(self.ts, t)  # out of order (rare): insert and rebuild the sums
        self.ts.insert(i, t)
        amounts = [b - a for a, b in zip(self.cum, self.cum[1:])]
        amounts.insert(i, n)
        self.cum = [0]
        for a in amounts:
            self.cum.append(self.cum[-1] + a)

    def total(self, start: float, end: float) -> int:
        """Tokens with start < ts <= end."""
        lo = bisect.bisect_right(self.ts, start)
        hi = bisect.bisect_right(self.ts, end)
        return self.cum[hi] - self.cum[lo] if hi > lo else 0

    def first_after(self, start: float, end: float) -> float | None:
        i = bisect.bisect_right(self.ts, start)
        return self.ts[i] if i < len(self.ts) and self.ts[i] <= end else None

    def release_time(self, start: float, end: float, limit: int, span: float) -> float | None:
        """When the window sum drops below `limit` as old events leave (None: it already is)."""
        total = self.total(start, end)
        if total < limit:
            return None
        i = bisect.bisect_right(self.ts, start)
        hi = bisect.bisect_right(self.ts, end)
        while i < hi:
            total -= self.cum[i + 1] - self.cum[i]
            if total < limit:
                return self.ts[i] + span
            i += 1
        return end + span

    def prune(self, before: float) -> None:
        i = bisect.bisect_right(self.ts, before)
        if i:
            base = self.cum[i]
            self.ts = self.ts[i:]
            self.cum = [c - base for c in self.cum[i:]]


class QuotaState(NamedTuple):
    pattern: str
    rolling_pct: float | None
    weekly_pct: float | None
    warn: bool
    block: bool
    tokens_per_s: float
    eta_reset: float | None  # seconds
    rolling_tokens: int = 0
    weekly_tokens: int = 0
    cooldown_until: float | None = None  # a block that holds whatever the windows say
    limited: bool = False  # a real 429 was seen and its cooldown holds
    fallback_lane: str = LANE_ANTHROPIC
    warn_pct: float = DEFAULT_WARN_PCT
    warn_pct_auto: float | None = None
    warn_pct_auto_confidence: float = 0.0
    limit_hits: int = 0

    def public(self) -> dict:
        out = self._asdict()
        for key in ("rolling_pct", "weekly_pct", "tokens_per_s", "eta_reset", "warn_pct_auto"):
            if out[key] is not None:
                out[key] = round(out[key], 3)
        out["warn_pct_auto_confidence"] = round(self.warn_pct_auto_confidence, 3)
        return out


@dataclass
class _Account:
    series: _Series = field(default_factory=_Series)
    block_until: float = 0.0
    limited_until: float = 0.0
    hits: list[float] = field(default_factory=list)  # budget % at each real 429


def calibrate(hits: list[float], warn_pct: float) -> tuple[float | None, float]:
    """`(warn_pct_auto, confidence)` from the budget % seen at real limit hits (see the docstring)."""
    if not hits:
        return None, 0.0
    import statistics  # (with decimal and fractions, ~0.6 MB a shim without 429s never needs)
    mean = statistics.fmean(hits)
    spread = statistics.pstdev(hits) if len(hits) > 1 else 0.0
    low = max(1.0, mean - spread)
    auto = min(100.0, warn_pct * low / 100.0)
    cv = spread / mean if mean > 0 else 1.0
    confidence = (1.0 - math.exp(-len(hits) / 3.0)) * max(0.0, 1.0 - cv)
    return auto, confidence


class QuotaBook:
    """The accounting of one shim: fed every finished record, asked for a model's state."""

    def __init__(self, config: QuotaConfig | None = None) -> None:
        self.config = config or QuotaConfig()
        self._accounts: dict[str, _Account] = {}
        self._journal: list[dict] | None = None  # records accounted since begin_rebuild()

    def reload(self, config: QuotaConfig) -> None:
        """Swap the config; accounts of patterns that stay keep their in-memory history (what is
        left when there is no store to rebuild from)."""
        self._journal = None
        self.config = config
        self._accounts = {k: v for k, v in self._accounts.items()
                          if any(q.pattern == k for q in config.quotas)}

    def begin_rebuild(self) -> None:
        """Keep every record accounted from now on, for the `rebuild()` that follows a store read."""
        self._journal = []

    def cancel_rebuild(self) -> None:
        """No rebuild follows (the store read was cancelled): stop keeping records."""
        self._journal = None

    def rebuild(self, config: QuotaConfig, stored: Iterable[dict]) -> int:
        """Replace the config and every account by a book replayed from `stored` (oldest first),
        plus the records accounted since `begin_rebuild()` that `stored` lacks (by rid); returns
        how many records counted."""
        journal, self._journal = self._journal or [], None
        records = list(stored)
        rids = {r.get("rid") for r in records}
        late = [r for r in journal if r.get("rid") is None or r.get("rid") not in rids]
        if late:  # stable: stored rows keep their (ts, rowid) order, late ones follow at equal ts
            records = sorted(records + late, key=lambda r: record_time(r) or 0.0)
        fresh = QuotaBook(config)
        counted = fresh.restore(records)
        self.config, self._accounts = config, fresh._accounts
        return counted

    def _account(self, quota: Quota) -> _Account:
        return self._accounts.setdefault(quota.pattern, _Account())

    def account(self, rec: dict) -> Quota | None:
        """Count one finished usage record; returns the quota it counted towards (or None)."""
        if self._journal is not None:
            self._journal.append(rec)
        quota = self.config.match(rec.get("model"))
        if quota is None:
            return None
        t = record_time(rec)
        if t is None:
            return None
        if quota.lane is not None and rec.get("lane") != quota.lane:
            return None
        acct = self._account(quota)
        if is_limit_hit(rec):
            before = self._pcts(quota, acct, t)
            acct.hits.append(max(p for p in before if p is not None) if any(
                p is not None for p in before) else 100.0)
            acct.limited_until = max(acct.limited_until, t + quota.cooldown)
            acct.block_until = max(acct.block_until, t + quota.cooldown)
        n = record_tokens(rec)
        if n:
            acct.series.add(t, n)
            rolling, weekly = self._pcts(quota, acct, t)
            if quota.cooldown and max(rolling or 0.0, weekly or 0.0) >= 100.0:
                acct.block_until = max(acct.block_until, t + quota.cooldown)
            acct.series.prune(t - max(quota.weekly_window, quota.rolling_window or 0.0, RATE_WINDOW))
        return quota

    def restore(self, records: Iterable[dict]) -> int:
        """Replay stored records (oldest first) into the book; returns how many counted."""
        return sum(1 for rec in records if self.account(rec) is not None)

    def _pcts(self, quota: Quota, acct: _Account, now: float) -> tuple[float | None, float | None]:
        s = acct.series
        rolling = weekly = None
        if quota.rolling_tokens:
            rolling = 100.0 * s.total(now - quota.rolling_window, now) / quota.rolling_tokens
        if quota.weekly_tokens:
            weekly = 100.0 * s.total(now - quota.weekly_window, now) / quota.weekly_tokens
        return rolling, weekly

    def state(self, model: str | None, now: float) -> QuotaState | None:
        """The quota state of `model` at `now`, or None when no quota covers it."""
        quota = self.config.match(model)
        return None if quota is None else self.state_of(quota, now)

    def state_of(self, quota: Quota, now: float) -> QuotaState:
        acct = self._accounts.get(quota.pattern) or _Account()
        s = acct.series
        rolling, weekly = self._pcts(quota, acct, now)
        top = max(rolling or 0.0, weekly or 0.0)
        cooling = acct.block_until > now
        block = top >= 100.0 or cooling
        warn = block or top >= quota.warn_pct
        releases = []
        if quota.rolling_tokens:
            releases.append(s.release_time(now - quota.rolling_window, now, quota.rolling_tokens,
                                           quota.rolling_window))
        if quota.weekly_tokens:
            releases.append(s.release_time(now - quota.weekly_window, now, quota.weekly_tokens,
                                           quota.weekly_window))
        if cooling:
            releases.append(acct.block_until)
        if block:
            eta = max(r for r in releases if r is not None) - now
        else:
            span = quota.rolling_window or quota.weekly_window
            first = s.first_after(now - span, now)
            eta = None if first is None else first + span - now
        auto, confidence = calibrate(acct.hits, quota.warn_pct)
        return QuotaState(
            pattern=quota.pattern, rolling_pct=rolling, weekly_pct=weekly, warn=warn, block=block,
            tokens_per_s=s.total(now - RATE_WINDOW, now) / RATE_WINDOW, eta_reset=eta,
            rolling_tokens=s.total(now - quota.rolling_window, now) if quota.rolling_window else 0,
            weekly_tokens=s.total(now - quota.weekly_window, now),
            cooldown_until=acct.block_until if cooling else None,
            limited=acct.limited_until > now, fallback_lane=quota.fallback_lane,
            warn_pct=quota.warn_pct, warn_pct_auto=auto, warn_pct_auto_confidence=confidence,
            limit_hits=len(acct.hits))

    def states(self, now: float) -> dict[str, QuotaState]:
        """Every configured quota's state, by pattern (file order)."""
        return {q.pattern: self.state_of(q, now) for q in self.config.quotas}


# ---------------------------------------------------------------- reroute (row 4b)
def apply_quota(decision: Decision, state: QuotaState | None, mode: str,
                catalog: "Catalog | None" = None) -> Decision:
    """Row 4b: a `to_zai` decision whose quota blocks goes to the fallback lane (see the modes above).

    Pure. Anything that is not `to_zai`, or has no quota state, comes back unchanged.
    """
    if state is None or decision.reason != "to_zai" or mode == "off":
        return decision
    if mode == "warn_first" and state.block and not state.limited:
        return decision._replace(reason="quota_warn_attempt")
    reroute = state.block or (mode == "early" and state.warn)
    if not reroute:
        return decision
    lane = state.fallback_lane or LANE_ANTHROPIC
    provider = catalog.provider(lane) if catalog is not None else None
    if catalog is not None and provider is None:
        lane = LANE_ANTHROPIC
    protocol = provider.protocol if provider is not None else "anthropic"
    return Decision(lane, lane, decision.upstream_model, "quota_block", protocol)
