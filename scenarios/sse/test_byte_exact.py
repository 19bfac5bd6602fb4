"""SSE passthrough: the client gets exactly the bytes the upstream wrote, as they are written."""
import httpx
import pytest

from harness.probes import http_probe

pytestmark = [pytest.mark.sse, pytest.mark.repro_go]


@pytest.mark.parametrize("model, lane", [("claude-sonnet-4-5", "anthropic"),
                                         ("claude-haiku-4-5", "zai")])
def test_long_stream_is_byte_exact(make_shim, mock_anthropic, mock_zai, keys, model, lane):
    shim = make_shim()
    res = http_probe(shim.url, model, "Say hi", stream=True, api_key=keys["CLIENT_API_KEY"],
                     extra_headers={"x-mock-deltas": "3000"})
    assert res.ok
    mock = mock_zai if lane == "zai" else mock_anthropic
    [call] = mock.wait_for_calls(1)
    assert call.finished and len(call.sent) > 100_000
    assert res.raw == call.sent
    rec = shim.record_for(res.rid)
    assert rec["sse"]["events"] == 3000 + 6 and rec["sse"]["bytes"] == len(call.sent)
    assert rec["sse"]["complete"] and rec["out_tokens"] == 3000
    assert res.headers["content-type"].startswith("text/event-stream")


def test_utf8_split_across_writes_is_relayed_unchanged(make_shim, mock_anthropic, mock_zai, keys):
    shim = make_shim()
    res = http_probe(shim.url, "claude-sonnet-4-5", "Say hi", stream=True,
                     api_key=keys["CLIENT_API_KEY"], extra_headers={"x-mock-fault": "split_utf8"})
    assert res.ok
    [call] = mock_anthropic.wait_for_calls(1)
    assert call.fault == "split_utf8"
    assert res.raw == call.sent
    res.raw.decode("utf-8")  # whole characters on the client side
    assert any(ord(ch) > 127 for ch in res.text)
    assert shim.record_for(res.rid)["sse"]["complete"]


def test_events_reach_the_client_before_the_stream_ends(make_shim, mock_anthropic, mock_zai, keys):
    """The mock sends message_start then stalls: the client must see it while the stream is open."""
    shim = make_shim()
    body = {"model": "claude-sonnet-4-5", "max_tokens": 5, "stream": True,
            "messages": [{"role": "user", "content": "hi"}]}
    headers = {"x-api-key": keys["CLIENT_API_KEY"], "x-mock-fault": "stall;seconds=20"}
    with httpx.Client(trust_env=False, timeout=15) as client:
        with client.stream("POST", f"{shim.url}/v1/messages", json=body, headers=headers) as resp:
            chunks = resp.iter_raw()  # kept referenced: a dropped generator closes the response
            first = next(chunks)
            assert first.startswith(b"event: message_start")
            [call] = mock_anthropic.calls
            assert not call.finished  # the upstream is still holding the stream open
            assert shim.records() == []  # and so is the shim: no record before the stream ends
    mock_anthropic.wait_until(lambda: mock_anthropic.calls[0].client_disconnected, 10)
