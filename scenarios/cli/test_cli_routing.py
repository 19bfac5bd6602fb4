"""The real `claude` CLI through the shim: haiku lands on zai, sonnet on anthropic (repro-go)."""
import pytest

from harness.cli_probe import cli_probe
from harness.probes import attach_records, fan_out

pytestmark = [pytest.mark.repro, pytest.mark.repro_go]


def test_cli_haiku_and_sonnet_take_their_lanes(make_shim, mock_anthropic, mock_zai, keys, claude_bin):
    shim = make_shim()
    results = []
    for alias, token in (("haiku", "CLI_HAIKU_OK"), ("sonnet", "CLI_SONNET_OK")):
        res = cli_probe(shim.url, alias, f"Reply with exactly: {token} and nothing else.",
                        auth_token=keys["CLIENT_OAUTH_TOKEN"], binary=claude_bin)
        assert res.ok and res.exit_code == 0, res.row()
        assert res.text == token and res.session_id
        results.append(res)
    found = attach_records(results, shim.wait_for_records(2))
    assert [results[i].lane for i in sorted(found)] == ["zai", "anthropic"]
    haiku_rec, sonnet_rec = found[0], found[1]
    assert "haiku" in haiku_rec["model"] and haiku_rec["decision"] == "to_zai"
    assert "sonnet" in sonnet_rec["model"] and sonnet_rec["decision"] == "to_anth"
    for rec in (haiku_rec, sonnet_rec):
        assert rec["op"] == "stream" and rec["sse"]["complete"] and rec["reason"] == "streaming"
        assert rec["path"] == "/v1/messages" and rec["bytes_in"] > 20_000  # the CLI's real body
    # what the CLI really sends: ?beta=true, its own credential to anthropic, never to zai
    [anth_call], [zai_call] = mock_anthropic.calls, mock_zai.calls
    assert anth_call.query == {"beta": "true"} and zai_call.query == {"beta": "true"}
    assert anth_call.headers["authorization"] == f"Bearer {keys['CLIENT_OAUTH_TOKEN']}"
    assert zai_call.headers["x-api-key"] == keys["ZAI_API_KEY"]
    assert keys["CLIENT_OAUTH_TOKEN"] not in str(zai_call.headers)
    for field in ("system", "tools", "metadata"):
        assert field in anth_call.json


def test_four_haiku_at_once(make_shim, mock_anthropic, mock_zai, keys, claude_bin):
    shim = make_shim()
    results = fan_out(lambda: cli_probe(shim.url, "haiku", "Reply with exactly: FAN and nothing else.",
                                        binary=claude_bin), 4)
    assert all(r.ok and r.text == "FAN" for r in results), [r.row() for r in results]
    found = attach_records(results, shim.wait_for_records(4))
    assert len(found) == 4 and {r.lane for r in results} == {"zai"}
    assert len({r.session_id for r in results}) == 4
    assert len(mock_zai.calls) == 4 and mock_anthropic.calls == []
