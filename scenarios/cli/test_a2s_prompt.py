"""The sandbox prompt through the real CLI returns exactly the asked-for string."""
import pytest

from harness.cli_probe import cli_probe

pytestmark = [pytest.mark.repro, pytest.mark.repro_quick]

PROMPT = "Reply with exactly: A2S_OK_20260211 and nothing else."


@pytest.mark.parametrize("alias", ["haiku", "sonnet"])
def test_a2s_prompt(make_shim, mock_anthropic, mock_zai, claude_bin, alias):
    shim = make_shim()
    res = cli_probe(shim.url, alias, PROMPT, binary=claude_bin, timeout=60)
    assert res.ok, res.row()
    assert res.text == "A2S_OK_20260211"
