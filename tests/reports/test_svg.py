import pytest

from reports.svg import boxplot, empty, five_numbers, hbars, stacked_bars

pytestmark = pytest.mark.quick


def test_five_numbers():
    assert five_numbers([1, 2, 3, 4, 5]) == (1, 2, 3, 4, 5)


def test_charts_are_inline_svg_without_remote_references():
    charts = [hbars([("zai", 3), ("anthropic", 5)], "lanes"),
              boxplot({"zai/stream": [1.0, 2.0, 9.0]}, "latency"),
              stacked_bars(["13:00", "13:01"], {"to_zai": [1, 2], "to_anth": [0, 3]}, "decisions"),
              empty("nothing")]
    for svg in charts:
        assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")
        assert "http://" not in svg and "https://" not in svg
    assert "zai" in charts[0] and "to_anth" in charts[2]
