"""The quota book: the accounting that fills per-model token budgets, and row 4b of the routing
table (the budgets themselves are configured in proxy.config.quotas).

Pure: no clock reads (every function takes `now`), no I/O.

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

A fleet (several shims on one PostgreSQL store; `QuotaBook(config, instance)`): the book also counts
each instance's tokens (a record's `instance`, the book's own for the records it accounted itself),
shown as `instances` in a state; a real 429 it accounts queues the quota's cooldown for the store
(`take_shares()`), and the cooldowns any shim shared (`apply_shared()`) block here as this shim's
own do.

Reroute modes: see proxy.config.quotas.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from proxy.config.quotas import DEFAULT_WARN_PCT, RATE_WINDOW, Quota, QuotaConfig
from proxy.core.routing import LANE_ANTHROPIC, Decision

if TYPE_CHECKING:
    from proxy.config.catalog import Catalog


# ---------------------------------------------------------------- accounting
def record_time(rec: Mapping[str, Any]) -> float | None:
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


def record_tokens(rec: Mapping[str, Any]) -> int:
    return sum(
        v
        for v in (rec.get("in_tokens"), rec.get("out_tokens"))
        if isinstance(v, int) and not isinstance(v, bool)
    )


def is_limit_hit(rec: Mapping[str, Any]) -> bool:
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
        amounts = [b - a for a, b in zip(self.cum, self.cum[1:], strict=False)]
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
    # a fleet: each instance's tokens in the windows, {instance: {rolling_tokens, weekly_tokens}}
    instances: dict | None = None

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
    by_instance: dict[str, _Series] = field(default_factory=dict)  # a fleet's book only


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

    def __init__(self, config: QuotaConfig | None = None, instance: str | None = None) -> None:
        self.config = config or QuotaConfig()
        self._accounts: dict[str, _Account] = {}
        self.instance = instance  # a fleet's book: tokens per instance, cooldowns shared
        self.shared_cooldowns: dict[str, float] = {}  # pattern -> until, from the store
        self._shares: list[tuple[str, str | None, float]] = []  # this shim's 429s, not yet shared
        # the records accounted since begin_rebuild()
        self._journal: list[Mapping[str, Any]] | None = None

    def reload(self, config: QuotaConfig) -> None:
        """Swap the config; accounts of patterns that stay keep their in-memory history (what is
        left when there is no store to rebuild from)."""
        self._journal = None
        self.config = config
        self._accounts = {
            k: v for k, v in self._accounts.items() if any(q.pattern == k for q in config.quotas)
        }

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
        records: list[Mapping[str, Any]] = list(stored)
        rids = {r.get("rid") for r in records}
        late = [r for r in journal if r.get("rid") is None or r.get("rid") not in rids]
        if late:  # stable: stored rows keep their (ts, rowid) order, late ones follow at equal ts
            records = sorted(records + late, key=lambda r: record_time(r) or 0.0)
        fresh = QuotaBook(config, self.instance)
        counted = fresh.restore(records)
        self.config, self._accounts = config, fresh._accounts
        return counted

    def _account(self, quota: Quota) -> _Account:
        return self._accounts.setdefault(quota.pattern, _Account())

    def account(self, rec: Mapping[str, Any]) -> Quota | None:
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
            acct.hits.append(
                max(p for p in before if p is not None)
                if any(p is not None for p in before)
                else 100.0
            )
            acct.limited_until = max(acct.limited_until, t + quota.cooldown)
            acct.block_until = max(acct.block_until, t + quota.cooldown)
            if self.instance is not None and quota.cooldown and not rec.get("instance"):
                self._shares.append(
                    (quota.pattern, quota.lane or rec.get("lane"), acct.limited_until)
                )
        n = record_tokens(rec)
        if n:
            acct.series.add(t, n)
            if self.instance is not None:
                who = rec.get("instance") or self.instance
                series = acct.by_instance.get(who)
                if series is None:
                    series = acct.by_instance[who] = _Series()
                series.add(t, n)
            rolling, weekly = self._pcts(quota, acct, t)
            if quota.cooldown and max(rolling or 0.0, weekly or 0.0) >= 100.0:
                acct.block_until = max(acct.block_until, t + quota.cooldown)
            keep = t - max(quota.weekly_window, quota.rolling_window or 0.0, RATE_WINDOW)
            acct.series.prune(keep)
            for series in acct.by_instance.values():
                series.prune(keep)
        return quota

    def take_shares(self) -> list[tuple[str, str | None, float]]:
        """The (pattern, lane, until) cooldowns of real 429s accounted since the last call."""
        shares, self._shares = self._shares, []
        return shares

    def give_back(self, shares: list[tuple[str, str | None, float]]) -> None:
        """Shares the store could not take: tried again at the next sync."""
        self._shares[:0] = shares

    def apply_shared(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """The fleet's active cooldowns (store rows: pattern, until): each blocks its quota here."""
        self.shared_cooldowns = {str(r["pattern"]): float(r["until"]) for r in rows}

    def restore(self, records: Iterable[Mapping[str, Any]]) -> int:
        """Replay stored records (oldest first) into the book; returns how many counted."""
        return sum(1 for rec in records if self.account(rec) is not None)

    def _pcts(self, quota: Quota, acct: _Account, now: float) -> tuple[float | None, float | None]:
        s = acct.series
        rolling = weekly = None
        if quota.rolling_tokens:
            assert quota.rolling_window is not None  # a rolling budget has its window (parse_quota)
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
        shared = self.shared_cooldowns.get(quota.pattern, 0.0)
        block_until = max(acct.block_until, shared)
        cooling = block_until > now
        block = top >= 100.0 or cooling
        warn = block or top >= quota.warn_pct
        releases = []
        eta: float | None
        if quota.rolling_tokens:
            assert quota.rolling_window is not None  # a rolling budget has its window (parse_quota)
            releases.append(
                s.release_time(
                    now - quota.rolling_window, now, quota.rolling_tokens, quota.rolling_window
                )
            )
        if quota.weekly_tokens:
            releases.append(
                s.release_time(
                    now - quota.weekly_window, now, quota.weekly_tokens, quota.weekly_window
                )
            )
        if cooling:
            releases.append(block_until)
        if block:
            eta = max(r for r in releases if r is not None) - now
        else:
            span = quota.rolling_window or quota.weekly_window
            first = s.first_after(now - span, now)
            eta = None if first is None else first + span - now
        auto, confidence = calibrate(acct.hits, quota.warn_pct)
        return QuotaState(
            pattern=quota.pattern,
            rolling_pct=rolling,
            weekly_pct=weekly,
            warn=warn,
            block=block,
            tokens_per_s=s.total(now - RATE_WINDOW, now) / RATE_WINDOW,
            eta_reset=eta,
            rolling_tokens=s.total(now - quota.rolling_window, now) if quota.rolling_window else 0,
            weekly_tokens=s.total(now - quota.weekly_window, now),
            cooldown_until=block_until if cooling else None,
            limited=max(acct.limited_until, shared) > now,
            fallback_lane=quota.fallback_lane,
            warn_pct=quota.warn_pct,
            warn_pct_auto=auto,
            warn_pct_auto_confidence=confidence,
            limit_hits=len(acct.hits),
            instances=None if self.instance is None else self._instances(quota, acct, now),
        )

    def _instances(self, quota: Quota, acct: _Account, now: float) -> dict:
        out = {}
        for who in sorted(acct.by_instance):
            s = acct.by_instance[who]
            rolling = s.total(now - quota.rolling_window, now) if quota.rolling_window else 0
            weekly = s.total(now - quota.weekly_window, now)
            if rolling or weekly:
                out[who] = {"rolling_tokens": rolling, "weekly_tokens": weekly}
        return out

    def states(self, now: float) -> dict[str, QuotaState]:
        """Every configured quota's state, by pattern (file order)."""
        return {q.pattern: self.state_of(q, now) for q in self.config.quotas}


# ---------------------------------------------------------------- reroute (row 4b)
def apply_quota(
    decision: Decision, state: QuotaState | None, mode: str, catalog: Catalog | None = None
) -> Decision:
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
