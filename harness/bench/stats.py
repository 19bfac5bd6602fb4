"""The bench's arithmetic, pure: percentiles, one scenario's row, pairing with `direct`, verdicts.

Every comparison is a ratio or a difference within one run: a target's p50 is paired with
`direct`'s p50 *of the same round* (the rounds are interleaved, so both saw the same machine state),
and the added latency is the median of those per-round differences.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from statistics import median


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0–100) by linear interpolation; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    if len(ordered) == 1:
        return float(ordered[0])
    pos = (len(ordered) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def round_row(latencies_ms: Sequence[float], ttfb_ms: Sequence[float], errors: int, started: int,
              wall_s: float, cpu_s: float | None) -> dict:
    """One target × scenario × round, as numbers."""
    ok = len(latencies_ms)
    return {
        "ok": ok, "errors": errors, "started": started,
        "p50_ms": percentile(latencies_ms, 50), "p99_ms": percentile(latencies_ms, 99),
        "ttfb_p50_ms": percentile(ttfb_ms, 50), "ttfb_p99_ms": percentile(ttfb_ms, 99),
        "rps": ok / wall_s if wall_s > 0 else None,
        "cpu_ms_per_req": cpu_s * 1000.0 / ok if cpu_s is not None and ok else None,
    }


def median_of(values: Iterable[float | None]) -> float | None:
    """The median of the values that are not None (None when there are none)."""
    present = [v for v in values if v is not None]
    return median(present) if present else None


def paired_added(rounds: Sequence[Mapping], direct_rounds: Sequence[Mapping],
                 key: str = "p50_ms") -> float | None:
    """Median over rounds of (target − direct) for `key`, pairing round i with round i."""
    diffs = [r[key] - d[key] for r, d in zip(rounds, direct_rounds, strict=False)
             if r.get(key) is not None and d.get(key) is not None]
    return median(diffs) if diffs else None


def combine(rounds: Sequence[Mapping], direct_rounds: Sequence[Mapping] | None) -> dict:
    """A target × scenario over all rounds: medians of the per-round numbers, errors summed."""
    out = {k: median_of(r[k] for r in rounds) for k in
           ("p50_ms", "p99_ms", "ttfb_p50_ms", "ttfb_p99_ms", "rps", "cpu_ms_per_req")}
    out["errors"] = sum(r["errors"] for r in rounds)
    out["ok"] = sum(r["ok"] for r in rounds)
    out["rounds"] = len(rounds)
    if direct_rounds:
        out["added_p50_ms"] = paired_added(rounds, direct_rounds, "p50_ms")
        out["added_ttfb_ms"] = paired_added(rounds, direct_rounds, "ttfb_p50_ms")
    else:
        out["added_p50_ms"] = out["added_ttfb_ms"] = None
    return out


def tls_counts(rounds: Sequence[Mapping]) -> dict:
    """The https path's counters over rounds: TLS handshakes per round (the median) and the share
    of the calls the TLS port answered over HTTP/2 (None when it answered none)."""
    tls_calls = sum(r.get("tls_calls", 0) for r in rounds)
    return {"handshakes": median_of(r.get("handshakes") for r in rounds),
            "h2_share": sum(r.get("h2_calls", 0) for r in rounds) / tls_calls if tls_calls else None}


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b not in (None, 0) else None


def verdict(name: str, value: float | None, limit: float, *, at_most: bool = True,
            unit: str = "") -> dict:
    """One target check: met or missed, and by how much (as a factor of the limit)."""
    if value is None:
        return {"check": name, "value": None, "limit": limit, "met": None,
                "note": "not measured"}
    met = value <= limit if at_most else value >= limit
    by = value / limit if limit else None
    sign = "≤" if at_most else "≥"
    note = f"{value:.2f}{unit} (target {sign} {limit:g}{unit})"
    if not met and by is not None:
        note += f": missed by {abs(by - 1) * 100:.0f}%"
    return {"check": name, "value": value, "limit": limit, "met": met, "note": note}
