"""reports.svg: lane colours, the log latency axis with its p50 mark, and count axes per bucket."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

from reports.svg import (
    LANE_COLORS,
    NONE_COLOR,
    OTHER_COLORS,
    LogAxis,
    boxplot,
    empty,
    five_numbers,
    hbars,
    lane_color,
    nice_step,
    stacked_bars,
    tick_text,
)

pytestmark = pytest.mark.quick
ROOT = Path(__file__).resolve().parents[2]


def test_five_numbers():
    assert five_numbers([1, 2, 3, 4, 5]) == (1, 2, 3, 4, 5)
    assert five_numbers([4, 1, 3, 2]) == (1, 1.75, 2.5, 3.25, 4)


def test_lane_colours_fixed_grey_and_hash_picked():
    assert lane_color("anthropic") == LANE_COLORS["anthropic"] != lane_color("zai") == LANE_COLORS["zai"]
    assert lane_color(None) == lane_color("none") == lane_color("unknown") == NONE_COLOR
    others = {lane_color(name) for name in ("glm", "openrouter", "deepseek", "vllm", "local")}
    assert others <= set(OTHER_COLORS)
    assert not others & {*LANE_COLORS.values(), NONE_COLOR}


def test_lane_colour_is_the_same_in_another_process():
    # hash() is salted per process; the palette pick must not be
    code = "from reports.svg import lane_color; print(lane_color('glm'), lane_color('openrouter'))"
    got = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={"PYTHONHASHSEED": seed}, cwd=ROOT).stdout.split()[0]
           for seed in ("1", "2")}
    assert got == {lane_color("glm")}


def test_log_axis_spans_decades_with_1_2_5_ticks():
    axis = LogAxis([3.0, 40.0, 700.0], 100, 400)
    assert axis.ticks() == [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000]
    assert axis.x(1) == 100 and axis.x(1000) == 400
    assert axis.x(10) == pytest.approx(200) and axis.x(100) == pytest.approx(300)
    assert axis.x(0) == axis.x(1)  # clipped to the floor
    wide = LogAxis([0.01, 1e6], 0, 800)
    assert wide.ticks() == [0.01, 0.1, 1, 10, 100, 1e3, 1e4, 1e5, 1e6]
    assert [tick_text(t) for t in (0.5, 20, 1000, 2000, 1500)] == ["0.5", "20", "1k", "2k", "1.5k"]


def _p50_marks(svg):
    return [(float(v), float(x)) for v, x in
            re.findall(r'<line class="p50" data-value="([\d.]+)" x1="([\d.]+)"', svg)]


def test_boxplot_puts_the_p50_mark_at_the_median_on_a_log_axis():
    values = [5.0, 10.0, 12.0, 30.0, 900.0]  # median 12: far left of the linear midpoint
    svg = boxplot([("zai/stream", lane_color("zai"), values),
                   ("anthropic/nonstream", lane_color("anthropic"), [100.0, 200.0, 300.0])], "latency")
    axis = LogAxis(values + [100.0, 200.0, 300.0], 190, 760 - 24)
    marks = _p50_marks(svg)
    assert [v for v, _ in marks] == [12.0, 200.0]
    for value, x in marks:
        assert x == pytest.approx(axis.x(value), abs=0.1)
    assert "p50 12 ms" in svg and "p50 200 ms" in svg
    ticks = re.findall(r'text-anchor="middle" font-family="sans-serif" font-size="10">([^<]+)</text>', svg)
    assert {"1", "10", "100", "1k"} <= set(ticks)
    assert "ms, log scale" in svg
    assert f'fill="{lane_color("zai")}"' in svg and f'fill="{lane_color("anthropic")}"' in svg


def test_boxplot_notes_values_clipped_at_zero():
    svg = boxplot([("a/b", "#000", [0.0, 2.0, 3.0])], "ttfb")
    assert "1 value(s) ≤ 0 drawn at 1" in svg


def test_stacked_bars_have_a_count_axis_and_lane_colours():
    series = [("anthropic", lane_color("anthropic"), [0, 3, 1]), ("zai", lane_color("zai"), [2, 0, 4])]
    svg = stacked_bars(["13:00", "13:05", "13:10"], series, "errors", "errors", "3 buckets of 5 min")
    counts = [int(n) for n in re.findall(r'data-count="(\d+)"', svg)]
    assert sorted(counts) == [1, 2, 3, 4] and sum(counts) == 10
    axis = re.findall(r'text-anchor="end" font-family="sans-serif" font-size="10">(\d+)</text>', svg)
    assert axis == ["0", "2", "4", "6"]  # the tallest bar is 5: step 2, axis to 6
    assert "13:00: zai 2 errors" in svg and "3 buckets of 5 min" in svg
    zero = stacked_bars(["13:00"], [("zai", "#000", [0])], "errors", "errors")
    assert "0 errors in 1 bucket(s)" in zero and "<rect" not in zero


def test_nice_step():
    assert [nice_step(n) for n in (1, 4, 7, 40, 130, 999)] == [1, 1, 2, 10, 50, 500]


def test_charts_are_inline_svg_without_remote_references():
    charts = [hbars([("zai", 3, "#4e79a7"), ("anthropic", 5, "#d97757")], "lanes"),
              boxplot([("zai/stream", "#4e79a7", [1.0, 2.0, 9.0])], "latency"),
              stacked_bars(["13:00", "13:01"], [("zai", "#4e79a7", [1, 2])], "requests"),
              empty("nothing")]
    for svg in charts:
        assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")
        assert "http://" not in svg and "https://" not in svg
    assert "zai" in charts[0] and "<title>" in charts[1]
