"""A long answer through the real CLI streams to the end: `reason: streaming`, `complete: true`."""
import pytest

from harness.cli_probe import cli_probe
from harness.probes import attach_records

pytestmark = [pytest.mark.sse, pytest.mark.repro]


@pytest.mark.parametrize("alias", ["haiku", "sonnet"])
def test_numbered_lines_stream_completes(make_shim, mock_anthropic, mock_zai, claude_bin, alias):
    shim = make_shim()
    res = cli_probe(shim.url, alias, "Generate 80 lines of numbered text", binary=claude_bin)
    assert res.ok, res.row()
    lines = res.text.strip().splitlines()
    assert len(lines) == 80 and lines[-1].startswith("80. ")
    [rec] = attach_records([res], shim.wait_for_records(1)).values()
    assert rec["reason"] == "streaming" and rec["sse"]["complete"] is True
    assert rec["sse"]["events"] > 80 and rec["err_type"] is None
    assert rec["out_tokens"] >= 80  # one token per delta in the mock
