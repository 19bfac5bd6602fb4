"""A conversation alternating Haiku (zai) and Sonnet (anthropic) turns with extended thinking.

Each mock signs its own thinking blocks and rejects blocks signed by the other, as the real services
do. Through the shim every turn succeeds: thinking another lane signed is dropped before sending, and
the record says so.
"""
import httpx
import pytest

from harness.probes import http_probe, text_from_message
from proxy.core.sse import assemble_message

pytestmark = [pytest.mark.repro_go, pytest.mark.hygiene]

MODELS = ["claude-haiku-4-5", "claude-sonnet-4-5", "claude-haiku-4-5", "claude-sonnet-4-5",
          "claude-sonnet-4-5"]


def _assistant_content(res):
    if res.stream:
        return assemble_message(res.raw)["content"]
    import json
    return json.loads(res.raw)["content"]


@pytest.mark.parametrize("stream", [False, True], ids=["nonstream", "stream"])
def test_alternating_lanes_keep_working(make_shim, mock_anthropic, mock_zai, keys, stream):
    shim = make_shim()
    messages = []
    rewrites = []
    for turn, model in enumerate(MODELS):
        messages.append({"role": "user", "content": f"Reply with exactly: TURN{turn} and nothing else."})
        body = {"model": model, "max_tokens": 4096, "stream": stream,
                "thinking": {"type": "enabled", "budget_tokens": 2048}, "messages": messages}
        res = http_probe(shim.url, model, stream=stream, api_key=keys["CLIENT_API_KEY"], body=body)
        assert res.ok, (turn, res.status, res.raw[:300])
        assert res.text == f"TURN{turn}"
        content = _assistant_content(res)
        assert content[0]["type"] == "thinking" and content[0]["signature"]
        messages.append({"role": "assistant", "content": content})
        rewrites.append(shim.record_for(res.rid)["rewrites"])
    # turn 1 (sonnet) carries zai's thinking from turn 0; turn 2 (haiku) carries anthropic's from 1 …
    assert rewrites == [None, ["stripped_foreign_thinking:1"], ["stripped_foreign_thinking:1"],
                        ["stripped_foreign_thinking:2"], ["stripped_foreign_thinking:2"]]
    # each mock only ever received thinking blocks it signed itself
    for mock, lane in ((mock_anthropic, "anthropic"), (mock_zai, "zai")):
        for call in mock.calls:
            for m in call.json["messages"]:
                if m["role"] == "assistant":
                    sigs = [b["signature"] for b in m["content"] if b["type"] == "thinking"]
                    assert all(s.startswith(f"sig-{lane}-") for s in sigs), (lane, sigs)


def test_without_the_shim_the_foreign_block_is_rejected(mock_anthropic, mock_zai, keys):
    """The control: the same second turn sent straight to the anthropic mock fails."""
    first = {"model": "claude-haiku-4-5", "max_tokens": 4096, "thinking": {"type": "enabled", "budget_tokens": 2048},
             "messages": [{"role": "user", "content": "hi"}]}
    reply = httpx.post(f"{mock_zai.zai_base_url}/v1/messages", json=first, trust_env=False).json()
    second = {**first, "model": "claude-sonnet-4-5",
              "messages": [*first["messages"], {"role": "assistant", "content": reply["content"]},
                           {"role": "user", "content": "again"}]}
    direct = httpx.post(f"{mock_anthropic.base_url}/v1/messages", json=second, trust_env=False)
    assert direct.status_code == 400 and "signature" in direct.json()["error"]["message"]
    assert text_from_message(reply)
