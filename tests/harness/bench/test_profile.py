import pytest

from harness.bench.profile import top_frames

pytestmark = pytest.mark.quick


def test_top_frames_from_collapsed_stacks():
    raw = ("main (proxy/cli/main.py:1);exchange (proxy/pipeline/run.py:10);loads (json/decoder.py:3) 6\n"
           "main (proxy/cli/main.py:1);exchange (proxy/pipeline/run.py:12);write (asyncio/x.py:1) 4\n")
    lines = top_frames(raw)
    assert lines[0] == "10 samples; self time:"
    assert "   60.0%  loads (json/decoder.py:3)" in lines
    # inclusive time per function, lines merged: exchange is on every sample
    assert "  100.0%  exchange (proxy/pipeline/run.py" in lines
    assert top_frames("") == ["(no samples)"]
