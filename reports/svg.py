"""Inline SVG charts for the HTML report: pure functions from numbers to SVG markup strings.

No JavaScript, no external references (inline SVG in HTML5 needs no xmlns, so none is written): each function returns one `<svg>` element (text is
HTML-escaped) that the report template embeds as is. Three shapes cover the report: horizontal
bars (shares), box plots (latency distributions) and stacked bars per time bucket.
"""
from __future__ import annotations

from html import escape

PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1",
           "#ff9da7", "#9c755f", "#bab0ac")
LABEL_W = 170  # px reserved for row labels
WIDTH = 760
ROW_H = 26
FONT = 'font-family="sans-serif" font-size="12"'


def color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def _svg(width: int, height: int, body: list[str], label: str) -> str:
    return (f'<svg width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(label)}">'
            + "".join(body) + "</svg>")


def _num(value: float) -> str:
    return f"{value:.0f}" if abs(value) >= 100 or float(value).is_integer() else f"{value:.2f}"


def empty(label: str) -> str:
    return _svg(WIDTH, 30, [f'<text x="4" y="20" {FONT} fill="#666">no data: {escape(label)}</text>'],
                label)


def hbars(rows: list[tuple[str, float]], label: str, fmt=_num) -> str:
    """One horizontal bar per (name, value), scaled to the largest value."""
    if not rows:
        return empty(label)
    top = max(v for _, v in rows) or 1.0
    span = WIDTH - LABEL_W - 80
    body = []
    for i, (name, value) in enumerate(rows):
        y = 6 + i * ROW_H
        w = max(1.0, span * value / top) if value else 0.0
        body.append(f'<text x="4" y="{y + 15}" {FONT}>{escape(name)}</text>'
                    f'<rect x="{LABEL_W}" y="{y + 3}" width="{w:.1f}" height="{ROW_H - 8}" '
                    f'fill="{color(i)}"/>'
                    f'<text x="{LABEL_W + w + 6:.1f}" y="{y + 15}" {FONT}>{escape(fmt(value))}</text>')
    return _svg(WIDTH, 12 + len(rows) * ROW_H, body, label)


def five_numbers(values: list[float]) -> tuple[float, float, float, float, float]:
    """min, q1, median, q3, max (linear interpolation, as numpy's default)."""
    s = sorted(values)

    def q(p: float) -> float:
        pos = p * (len(s) - 1)
        lo = int(pos)
        hi = min(lo + 1, len(s) - 1)
        return s[lo] + (s[hi] - s[lo]) * (pos - lo)

    return s[0], q(0.25), q(0.5), q(0.75), s[-1]


def boxplot(groups: dict[str, list[float]], label: str, unit: str = "ms") -> str:
    """A horizontal box plot (min–q1–median–q3–max) per group, on one shared linear axis."""
    groups = {k: v for k, v in groups.items() if v}
    if not groups:
        return empty(label)
    top = max(max(v) for v in groups.values()) or 1.0
    span = WIDTH - LABEL_W - 90

    def x(v: float) -> float:
        return LABEL_W + span * v / top

    body = []
    for i, (name, values) in enumerate(groups.items()):
        lo, q1, med, q3, hi = five_numbers(values)
        y = 6 + i * ROW_H
        mid = y + ROW_H / 2
        body.append(
            f'<text x="4" y="{mid + 4:.1f}" {FONT}>{escape(name)} (n={len(values)})</text>'
            f'<line x1="{x(lo):.1f}" y1="{mid:.1f}" x2="{x(hi):.1f}" y2="{mid:.1f}" stroke="#333"/>'
            f'<rect x="{x(q1):.1f}" y="{y + 4}" width="{max(1.0, x(q3) - x(q1)):.1f}" '
            f'height="{ROW_H - 8}" fill="{color(i)}" stroke="#333"/>'
            f'<line x1="{x(med):.1f}" y1="{y + 4}" x2="{x(med):.1f}" y2="{y + ROW_H - 4}" '
            f'stroke="#000" stroke-width="2"/>'
            f'<text x="{x(hi) + 6:.1f}" y="{mid + 4:.1f}" {FONT}>p50 {escape(_num(med))} {unit}</text>')
    axis_y = 10 + len(groups) * ROW_H
    body.append(f'<line x1="{LABEL_W}" y1="{axis_y}" x2="{LABEL_W + span}" y2="{axis_y}" stroke="#999"/>'
                f'<text x="{LABEL_W}" y="{axis_y + 14}" {FONT}>0</text>'
                f'<text x="{LABEL_W + span - 40}" y="{axis_y + 14}" {FONT}>'
                f'{escape(_num(top))} {unit}</text>')
    return _svg(WIDTH, axis_y + 22, body, label)


def stacked_bars(buckets: list[str], series: dict[str, list[int]], label: str) -> str:
    """One vertical bar per time bucket, stacked by series, with a legend and first/last labels."""
    if not buckets or not series:
        return empty(label)
    totals = [sum(values[i] for values in series.values()) for i in range(len(buckets))]
    top = max(totals) or 1
    plot_h, left, legend_h = 160, 40, 20 + 16 * ((len(series) + 3) // 4)
    slot = (WIDTH - left - 10) / len(buckets)
    bar_w = max(1.0, slot * 0.8)
    body = [f'<text x="4" y="14" {FONT}>{top}</text>',
            f'<line x1="{left}" y1="{plot_h + 10}" x2="{WIDTH - 10}" y2="{plot_h + 10}" stroke="#999"/>']
    for i in range(len(buckets)):
        base = plot_h + 10
        for j, values in enumerate(series.values()):
            n = values[i]
            if not n:
                continue
            h = plot_h * n / top
            base -= h
            body.append(f'<rect x="{left + i * slot:.1f}" y="{base:.1f}" width="{bar_w:.1f}" '
                        f'height="{h:.1f}" fill="{color(j)}"><title>{escape(buckets[i])}: '
                        f'{escape(list(series)[j])} {n}</title></rect>')
    body.append(f'<text x="{left}" y="{plot_h + 26}" {FONT}>{escape(buckets[0])}</text>')
    if len(buckets) > 1:
        body.append(f'<text x="{WIDTH - 10}" y="{plot_h + 26}" text-anchor="end" {FONT}>'
                    f'{escape(buckets[-1])}</text>')
    for j, name in enumerate(series):
        lx, ly = left + (j % 4) * 180, plot_h + 44 + (j // 4) * 16
        body.append(f'<rect x="{lx}" y="{ly - 10}" width="10" height="10" fill="{color(j)}"/>'
                    f'<text x="{lx + 14}" y="{ly}" {FONT}>{escape(name)}</text>')
    return _svg(WIDTH, plot_h + 30 + legend_h, body, label)
