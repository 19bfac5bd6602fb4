import pytest

from harness.progress import progress_bar

pytestmark = pytest.mark.quick


def test_no_bar_without_a_terminal(capsys):
    with progress_bar(3, "probes") as advance:
        for i in range(3):
            advance(f"step {i}")
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
