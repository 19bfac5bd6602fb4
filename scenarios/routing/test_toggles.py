"""OFFLOAD_PAUSED and FORCE_HAIKU_TO_ZAI=0 keep haiku on the anthropic lane, with the right decision."""
import pytest

from harness.probe_kinds import probe

pytestmark = [pytest.mark.repro, pytest.mark.repro_go]


@pytest.mark.parametrize("env, decision", [({"OFFLOAD_PAUSED": "1"}, "offload_paused"),
                                           ({"FORCE_HAIKU_TO_ZAI": "0"}, "to_anth")])
def test_haiku_stays_on_anthropic(make_shim, mock_anthropic, mock_zai, keys, env, decision):
    shim = make_shim(env)
    res = probe("http", shim.url, "claude-haiku-4-5-20251001", api_key=keys["CLIENT_API_KEY"])
    assert res.ok
    rec = shim.record_for(res.rid)
    assert (rec["lane"], rec["decision"]) == ("anthropic", decision)
    assert "header_mode" not in rec
    assert len(mock_anthropic.calls) == 1 and mock_zai.calls == []
    # the client's own credential went to anthropic, as the hygiene rules say
    assert mock_anthropic.calls[0].headers["x-api-key"] == keys["CLIENT_API_KEY"]
