"""Inline SVG charts for the HTML report: pure functions from numbers to SVG markup strings.

No JavaScript, no external references (inline SVG in HTML5 needs no xmlns, so none is written):
each function returns one `<svg>` element (text is HTML-escaped) that the report template embeds
as is. Three shapes cover the report: horizontal bars (shares), box plots on a log axis with ticks
(latency distributions; the p50 mark sits at the median) and stacked bars per time bucket with a
count axis (errors and requests over time).

Colour means lane, everywhere: `lane_color(lane)` gives anthropic and zai fixed colours, a lane
with no name grey, and any other (catalog) lane one picked by a stable hash of its name, so the
same lane has the same colour in every chart, every table and every report.
"""
from __future__ import annotations

import math
import zlib
from html import escape

LANE_COLORS = {"anthropic": "#d97757", "zai": "#4e79a7"}
NONE_COLOR = "#9e9e9e"  # records without a lane
# For catalog lanes: none close to the two fixed colours or to the grey.
OTHER_COLORS = ("#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#9c755f", "#ff9da7", "#8cd17d",
                "#499894", "#d4a6c8", "#6b4c9a")
NONE_LANES = frozenset({"", "none", "unknown"})
LABEL_W = 190  # px reserved for row labels
WIDTH = 760
RIGHT = 24  # px kept free right of a plot
FONT = 'font-family="sans-serif" font-size="12"'
SMALL = 'font-family="sans-serif" font-size="10"'
GRID = "#e2e2e2"


def lane_color(lane: str | None) -> str:
    """The one colour of a lane (deterministic across processes: crc32, not hash())."""
    if lane is None or str(lane) in NONE_LANES:
        return NONE_COLOR
    name = str(lane)
    if name in LANE_COLORS:
        return LANE_COLORS[name]
    return OTHER_COLORS[zlib.crc32(name.encode("utf-8")) % len(OTHER_COLORS)]


def _svg(width: int, height: float, body: list[str], label: str) -> str:
    return (f'<svg width="{width}" height="{height:.0f}" viewBox="0 0 {width} {height:.0f}" '
            f'role="img" aria-label="{escape(label)}">' + "".join(body) + "</svg>")


def _num(value: float) -> str:
    if abs(value) >= 100 or float(value).is_integer():
        return f"{value:.0f}"
    return f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}"


def empty(label: str, message: str = "no data") -> str:
    return _svg(WIDTH, 30, [f'<text x="4" y="20" {FONT} fill="#666">{escape(message)}: '
                            f'{escape(label)}</text>'], label)


def swatch(color: str, size: int = 10) -> str:
    """A small filled square (table legends)."""
    return (f'<svg width="{size}" height="{size}" aria-hidden="true">'
            f'<rect width="{size}" height="{size}" fill="{escape(color)}"/></svg>')


def hbars(rows: list[tuple[str, float, str]], label: str, fmt=_num) -> str:
    """One horizontal bar per (name, value, colour), scaled to the largest value."""
    if not rows:
        return empty(label)
    row_h = 26
    top = max(v for _, v, _ in rows) or 1.0
    span = WIDTH - LABEL_W - 80
    body = []
    for i, (name, value, color) in enumerate(rows):
        y = 6 + i * row_h
        w = max(1.0, span * value / top) if value else 0.0
        body.append(f'<text x="4" y="{y + 15}" {FONT}>{escape(name)}</text>'
                    f'<rect x="{LABEL_W}" y="{y + 3}" width="{w:.1f}" height="{row_h - 8}" '
                    f'fill="{escape(color)}"/>'
                    f'<text x="{LABEL_W + w + 6:.1f}" y="{y + 15}" {FONT}>{escape(fmt(value))}</text>')
    return _svg(WIDTH, 12 + len(rows) * row_h, body, label)


def five_numbers(values: list[float]) -> tuple[float, float, float, float, float]:
    """min, q1, median, q3, max (linear interpolation, as numpy's default)."""
    s = sorted(values)

    def q(p: float) -> float:
        pos = p * (len(s) - 1)
        lo = int(pos)
        hi = min(lo + 1, len(s) - 1)
        return s[lo] + (s[hi] - s[lo]) * (pos - lo)

    return s[0], q(0.25), q(0.5), q(0.75), s[-1]


class LogAxis:
    """A base-10 axis from a decade below the smallest positive value to a decade above the
    largest; values at or below zero are clipped to the floor (and counted by the caller)."""

    def __init__(self, values: list[float], x0: float, x1: float) -> None:
        positive = [v for v in values if v > 0]
        lo = min(positive) if positive else 1.0
        hi = max(positive) if positive else 10.0
        self.lo_exp = math.floor(math.log10(lo))
        self.hi_exp = max(math.ceil(math.log10(hi)), self.lo_exp + 1)
        self.floor = 10.0 ** self.lo_exp
        self.x0, self.x1 = x0, x1

    def x(self, value: float) -> float:
        v = max(value, self.floor)
        frac = (math.log10(v) - self.lo_exp) / (self.hi_exp - self.lo_exp)
        return self.x0 + (self.x1 - self.x0) * frac

    def ticks(self) -> list[float]:
        """1-2-5 ticks per decade over up to four decades; decades only beyond that."""
        steps = (1, 2, 5) if self.hi_exp - self.lo_exp <= 4 else (1,)
        out = [m * 10.0 ** e for e in range(self.lo_exp, self.hi_exp) for m in steps]
        return out + [10.0 ** self.hi_exp]


def tick_text(value: float) -> str:
    if value >= 1000:
        k = value / 1000
        return f"{k:.0f}k" if k.is_integer() else f"{k:g}k"
    return f"{value:g}"


def boxplot(rows: list[tuple[str, str, list[float]]], label: str, unit: str = "ms") -> str:
    """A box plot per (name, colour, values): whiskers min–max, box q1–q3, a p50 mark (and its
    label) at the median, on one shared log axis with 1-2-5 ticks and grid lines."""
    rows = [(name, color, values) for name, color, values in rows if values]
    if not rows:
        return empty(label)
    row_h, top_pad = 36, 4
    axis = LogAxis([v for _, _, values in rows for v in values], LABEL_W, WIDTH - RIGHT)
    plot_bottom = top_pad + len(rows) * row_h
    body = []
    for t in axis.ticks():
        tx = axis.x(t)
        body.append(f'<line class="tick" x1="{tx:.1f}" y1="{top_pad}" x2="{tx:.1f}" '
                    f'y2="{plot_bottom}" stroke="{GRID}"/>'
                    f'<text x="{tx:.1f}" y="{plot_bottom + 14}" text-anchor="middle" {SMALL}>'
                    f'{escape(tick_text(t))}</text>')
    clipped = 0
    for i, (name, color, values) in enumerate(rows):
        lo, q1, med, q3, hi = five_numbers(values)
        clipped += sum(1 for v in values if v <= 0)
        y = top_pad + i * row_h
        box_top, box_h = y + 16, row_h - 20
        mid = box_top + box_h / 2
        xm = axis.x(med)
        label_x = min(max(xm, LABEL_W + 40), WIDTH - RIGHT - 40)
        summary = (f"{name}: n={len(values)}, min {_num(lo)}, q1 {_num(q1)}, p50 {_num(med)}, "
                   f"q3 {_num(q3)}, max {_num(hi)} {unit}")
        body.append(
            f'<text x="4" y="{mid + 4:.1f}" {FONT}>{escape(name)} (n={len(values)})</text>'
            f'<line x1="{axis.x(lo):.1f}" y1="{mid:.1f}" x2="{axis.x(hi):.1f}" y2="{mid:.1f}" '
            f'stroke="#333"/>'
            f'<rect x="{axis.x(q1):.1f}" y="{box_top}" width="{max(1.0, axis.x(q3) - axis.x(q1)):.1f}" '
            f'height="{box_h}" fill="{escape(color)}" stroke="#333"><title>{escape(summary)}</title></rect>'
            f'<line class="p50" data-value="{med:.3f}" x1="{xm:.1f}" y1="{box_top - 2}" x2="{xm:.1f}" '
            f'y2="{box_top + box_h + 2}" stroke="#000" stroke-width="2"/>'
            f'<text class="p50-label" x="{label_x:.1f}" y="{box_top - 4}" text-anchor="middle" '
            f'{SMALL}>p50 {escape(_num(med))} {unit}</text>')
    note = f"{unit}, log scale"
    if clipped:
        note += f"; {clipped} value(s) ≤ 0 drawn at {tick_text(axis.floor)}"
    body.append(f'<line x1="{LABEL_W}" y1="{plot_bottom}" x2="{WIDTH - RIGHT}" y2="{plot_bottom}" '
                f'stroke="#999"/>'
                f'<text x="{WIDTH - RIGHT}" y="{plot_bottom + 30}" text-anchor="end" {SMALL}>'
                f'{escape(note)}</text>')
    return _svg(WIDTH, plot_bottom + 38, body, label)


def nice_step(top: int, ticks: int = 4) -> int:
    """A 1-2-5 step that covers `top` in about `ticks` steps."""
    raw = max(top / ticks, 1)
    exp = 10 ** math.floor(math.log10(raw))
    return int(next(m * exp for m in (1, 2, 5, 10) if m * exp >= raw))


def stacked_bars(buckets: list[str], series: list[tuple[str, str, list[int]]], label: str,
                 what: str = "requests", caption: str = "") -> str:
    """One vertical bar per time bucket, stacked by (name, colour, counts), with a count axis
    (ticks and grid lines), first/middle/last bucket labels and a legend."""
    if not buckets or not series:
        return empty(label)
    totals = [sum(counts[i] for _, _, counts in series) for i in range(len(buckets))]
    if not any(totals):
        return empty(label, f"0 {what} in {len(buckets)} bucket(s)")
    step = nice_step(max(totals))
    top = step * math.ceil(max(totals) / step)
    plot_h, left, top_pad = 160, 44, 8
    base_y = top_pad + plot_h
    legend_rows = (len(series) + 3) // 4
    slot = (WIDTH - left - RIGHT) / len(buckets)
    bar_w = max(1.0, slot * 0.8)
    body = []
    for v in range(0, top + 1, step):
        y = base_y - plot_h * v / top
        body.append(f'<line class="tick" x1="{left}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" '
                    f'stroke="{GRID if v else "#999"}"/>'
                    f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end" {SMALL}>{v}</text>')
    for i in range(len(buckets)):
        y = base_y
        for name, color, counts in series:
            n = counts[i]
            if not n:
                continue
            h = plot_h * n / top
            y -= h
            body.append(f'<rect x="{left + i * slot:.1f}" y="{y:.1f}" width="{bar_w:.1f}" '
                        f'height="{h:.1f}" fill="{escape(color)}" data-count="{n}">'
                        f'<title>{escape(buckets[i])}: {escape(name)} {n} {escape(what)}</title></rect>')
    shown = sorted({0, len(buckets) // 2, len(buckets) - 1})
    for i in shown:
        anchor = "start" if i == 0 else ("end" if i == len(buckets) - 1 else "middle")
        x = left + i * slot + (0 if anchor == "start" else slot if anchor == "end" else slot / 2)
        body.append(f'<text x="{x:.1f}" y="{base_y + 16}" text-anchor="{anchor}" {SMALL}>'
                    f'{escape(buckets[i])}</text>')
    body.append(f'<text x="4" y="{top_pad + 4}" {SMALL}>{escape(what)}</text>')
    if caption:
        body.append(f'<text x="{WIDTH - RIGHT}" y="{base_y + 30}" text-anchor="end" {SMALL}>'
                    f'{escape(caption)}</text>')
    for j, (name, color, _) in enumerate(series):
        lx, ly = left + (j % 4) * 170, base_y + 48 + (j // 4) * 16
        body.append(f'<rect x="{lx}" y="{ly - 10}" width="10" height="10" fill="{escape(color)}"/>'
                    f'<text x="{lx + 14}" y="{ly}" {FONT}>{escape(name)}</text>')
    return _svg(WIDTH, base_y + 40 + 16 * legend_rows + 8, body, label)
