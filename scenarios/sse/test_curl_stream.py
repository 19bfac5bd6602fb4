"""Real curl with -N reads the stream byte for byte as the upstream wrote it."""
import pytest

from harness.cli_probe import curl_probe

pytestmark = [pytest.mark.sse, pytest.mark.repro_go]


def test_curl_stream_is_byte_exact(make_shim, mock_anthropic, mock_zai, keys):
    shim = make_shim()
    res = curl_probe(shim.url, "claude-haiku-4-5", "Say hi", stream=True, api_key=keys["CLIENT_API_KEY"],
                     extra_headers={"x-mock-deltas": "500", "x-mock-fault": "split_utf8"})
    assert res.ok and res.exit_code == 0, res.row()
    [call] = mock_zai.wait_for_calls(1)
    assert res.raw == call.sent and res.lane == "zai"
    assert shim.record_for(res.rid)["sse"]["complete"]


def test_curl_nonstream_error_passthrough(make_shim, mock_anthropic, mock_zai, keys):
    shim = make_shim()
    res = curl_probe(shim.url, "claude-sonnet-4-5", "Say hi", api_key=keys["CLIENT_API_KEY"],
                     extra_headers={"x-mock-fault": "status=529"})
    assert res.status == 529 and res.lane == "anthropic"
    assert res.raw == mock_anthropic.wait_for_calls(1)[0].sent
