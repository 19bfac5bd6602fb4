"""Upstream 400/429/500 through the real CLI: exit 1, `api_error_status` matches, record says why."""
import pytest

from harness.cli_probe import cli_probe
from harness.probes import attach_records

pytestmark = [pytest.mark.repro, pytest.mark.faults]


@pytest.mark.parametrize("status, err_type", [(400, "upstream_4xx"), (429, "upstream_4xx"),
                                              (500, "upstream_5xx")])
def test_cli_sees_the_upstream_error(make_shim, mock_anthropic, mock_zai, claude_bin, status, err_type):
    mock_anthropic.set_default(f"status={status}")  # every attempt fails, whatever the CLI retries
    shim = make_shim()
    res = cli_probe(shim.url, "sonnet", "Say hi", binary=claude_bin, timeout=60)
    assert res.exit_code == 1, res.row()
    assert res.status == status and not res.ok
    records = shim.wait_for_records(1)
    assert attach_records([res], records), "the CLI's request has a usage record"
    assert all(r["upstream_status"] == status and r["err_type"] == err_type for r in records)
    assert len(records) == len(mock_anthropic.calls)  # one record per request that reached the shim
