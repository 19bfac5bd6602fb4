import pytest

from proxy.config.catalog import Provider
from proxy.config.load import load_settings
from proxy.core.redact import Secret
from proxy.pipeline.prepare import upstream_body, upstream_url
from proxy.pipeline.state import ShimState
from proxy.protocols import for_path

pytestmark = pytest.mark.quick


def _provider(protocol, base="http://up.test/base"):
    return Provider(name="p", protocol=protocol, base_url=base, api_key=Secret("k" * 10), key_env=None,
                    header_mode="authorization", source="test")


def test_protocol_by_path():
    assert for_path("/v1/chat/completions").name == "openai"
    for path in ("/v1/messages", "/v1/message", "/v1/messages/count_tokens"):
        assert for_path(path).name == "anthropic"


def test_urls_follow_each_sdk_convention():
    assert upstream_url(_provider("openai"), "nonstream", "beta=true") == \
        "http://up.test/base/chat/completions"
    assert upstream_url(_provider("anthropic"), "nonstream", "beta=true") == \
        "http://up.test/base/v1/messages?beta=true"


def test_same_protocol_body_is_untouched_unless_a_route_renames_the_model():
    state = ShimState(load_settings({}), None)
    payload = {"model": "m", "messages": []}
    body = b'{"model": "m", "messages": []}'
    rec = {"rewrites": None}
    out, out_body = upstream_body(dict(payload), body, "anthropic", _provider("anthropic"), "p", "m", state, rec)
    assert out_body is body and rec["rewrites"] is None
    out, out_body = upstream_body(dict(payload), body, "anthropic", _provider("anthropic"), "p", "m2", state, rec)
    assert out["model"] == "m2" and b'"m2"' in out_body and rec["rewrites"] == ["model"]


def test_cross_protocol_body_is_converted():
    state = ShimState(load_settings({}), None)
    payload = {"model": "m", "max_tokens": 5, "system": "s", "messages": [{"role": "user", "content": "hi"}]}
    out, out_body = upstream_body(payload, b"", "anthropic", _provider("openai"), "p", "up-m", state, {})
    assert out["model"] == "up-m" and out["messages"][0] == {"role": "system", "content": "s"}
    assert b'"up-m"' in out_body




def test_route_writes_lane_provider_decision_and_upstream_model_into_the_record(tmp_path):
    from proxy.core.record import new_record
    from proxy.pipeline.prepare import route
    settings = load_settings({"ZAI_API_KEY": "zai-key-0123456789", "CCP_LOGS_DIR": str(tmp_path)})
    state = ShimState(settings, None)
    for model, lane, reason in (("claude-haiku-4-5-20251001", "zai", "to_zai"),
                                ("claude-sonnet-4-5", "anthropic", "to_anth")):
        rec = new_record("r", "/v1/messages")
        decision, provider = route(state, model, "anthropic", rec)
        assert (rec["lane"], rec["provider"], rec["decision"], rec["upstream_model"]) == (
            lane, lane, reason, model)
        assert decision.reason == reason and provider.name == lane
