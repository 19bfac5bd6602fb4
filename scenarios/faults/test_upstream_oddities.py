"""Upstream oddities, accounted: a compressed answer, a stream short of its last event, a stream
request answered with a body that never ends. Each is checked on what the client got (the
official SDK parses it), what the upstream received and the record."""
import anthropic
import httpx
import pytest

from harness.probes import http_probe

pytestmark = [pytest.mark.faults, pytest.mark.repro_go]

GZIP_CLIENT = {"accept-encoding": "gzip, deflate, br"}  # what the SDKs and the CLI send


def _sdk(shim, key, fault):
    return anthropic.Anthropic(base_url=shim.url, api_key=key, max_retries=0, timeout=30,
                               default_headers={"x-mock-fault": fault})


def test_the_upstream_is_asked_for_plain_bytes(make_shim, mock_anthropic, mock_zai, keys):
    shim = make_shim()
    for model in ("claude-sonnet-4-5", "claude-haiku-4-5"):
        res = http_probe(shim.url, model, api_key=keys["CLIENT_API_KEY"], extra_headers=GZIP_CLIENT)
        assert res.status == 200
    calls = mock_anthropic.wait_for_calls(1) + mock_zai.wait_for_calls(1)
    assert [c.headers.get("accept-encoding") for c in calls] == ["identity", "identity"]


def test_a_gzip_answer_is_decoded_and_its_tokens_counted(make_shim, mock_anthropic, mock_zai, keys):
    shim = make_shim()
    with _sdk(shim, keys["CLIENT_API_KEY"], "gzip") as client:  # (closed: no socket left to the GC)
        msg = client.messages.create(model="claude-sonnet-4-5", max_tokens=64, messages=[
            {"role": "user", "content": "Reply with exactly: GZ_OK and nothing else."}])
    assert msg.content[0].text == "GZ_OK"
    raw = http_probe(shim.url, "claude-sonnet-4-5", api_key=keys["CLIENT_API_KEY"],
                     extra_headers={**GZIP_CLIENT, "x-mock-fault": "gzip"})
    calls = mock_anthropic.wait_for_calls(2)
    assert calls[1].sent[:2] == b"\x1f\x8b"  # the mock did send gzip
    assert "content-encoding" not in raw.headers and raw.raw.startswith(b"{")
    sdk_rec, raw_rec = shim.wait_for_records(2)
    assert {(r["status"], r["err_type"]) for r in (sdk_rec, raw_rec)} == {(200, None)}
    assert sdk_rec["out_tokens"] == msg.usage.output_tokens and sdk_rec["in_tokens"]
    usage = httpx.Response(200, content=raw.raw).json()["usage"]
    assert (raw_rec["in_tokens"], raw_rec["out_tokens"]) == (usage["input_tokens"], usage["output_tokens"])
    assert raw_rec["bytes_out"] == len(raw.raw)


def test_a_gzip_stream_is_decoded_metered_and_whole(make_shim, mock_anthropic, mock_zai, keys):
    shim = make_shim()
    with _sdk(shim, keys["CLIENT_API_KEY"], "gzip") as client, client.messages.stream(
            model="claude-sonnet-4-5", max_tokens=64,
            messages=[{"role": "user", "content": "Generate 3 lines of numbered text"}]) as s:
        text = s.get_final_text()
        final = s.get_final_message()
    assert text.count("\n") == 2
    [call] = mock_anthropic.wait_for_calls(1)
    assert call.sent[:2] == b"\x1f\x8b"
    [rec] = shim.wait_for_records(1)
    assert rec["sse"]["complete"] is True and rec["reason"] == "streaming" and rec["err_type"] is None
    assert rec["out_tokens"] == final.usage.output_tokens


def test_a_passthrough_stream_short_of_message_stop_ends_with_an_error_event(make_shim, mock_anthropic,
                                                                              mock_zai, keys):
    shim = make_shim()
    res = http_probe(shim.url, "claude-sonnet-4-5", stream=True, api_key=keys["CLIENT_API_KEY"],
                     extra_headers={"x-mock-fault": "no_stop"})
    [call] = mock_anthropic.wait_for_calls(1)
    assert call.finished and b"message_stop" not in call.sent
    assert res.status == 200 and res.raw.startswith(call.sent)  # every byte relayed, then told
    tail = res.raw[len(call.sent):]
    assert tail.startswith(b"event: error\n") and b'"api_error"' in tail
    # the SDK raises it, not a silent end
    with _sdk(shim, keys["CLIENT_API_KEY"], "no_stop") as client, pytest.raises(anthropic.APIStatusError):
        with client.messages.stream(model="claude-sonnet-4-5", max_tokens=64,
                                    messages=[{"role": "user", "content": "hi"}]) as s:
            s.get_final_text()
    recs = shim.wait_for_records(2)
    assert {(r["err_type"], r["reason"]) for r in recs} == {("net", "stream_incomplete")}
    assert all(r["partial"] for r in recs)


def test_a_stream_request_answered_with_a_never_ending_body_is_cut_in_the_json_time(
        make_shim, mock_anthropic, mock_zai, keys):
    shim = make_shim({"CCP_JSON_TIMEOUT": "1s", "CCP_SSE_IDLE_TIMEOUT": "30s"})
    res = http_probe(shim.url, "claude-sonnet-4-5", stream=True, api_key=keys["CLIENT_API_KEY"],
                     extra_headers={"x-mock-fault": "json_trickle;seconds=60"}, timeout=20)
    assert res.status == 504 and res.elapsed_ms < 10_000
    body = httpx.Response(504, content=res.raw).json()
    assert body["type"] == "error" and body["error"]["type"] == "timeout_error"
    [call] = mock_anthropic.wait_for_calls(1)
    assert call.json["stream"] is True
    rec = shim.record_for(res.rid)
    assert (rec["status"], rec["err_type"]) == (504, "timeout")
