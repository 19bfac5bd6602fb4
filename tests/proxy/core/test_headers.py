import pytest

from proxy.core.headers import (
    LaneCredentials,
    client_response_headers,
    openai_request_headers,
    upstream_request_headers,
)

pytestmark = pytest.mark.quick

CREDS = LaneCredentials(zai_api_key="zai-KEY", anthropic_auth_token="ant-TOKEN",
                        anthropic_api_key="ant-KEY")
CLIENT = [("Host", "127.0.0.1:1"), ("Content-Length", "10"), ("Connection", "keep-alive, x-trace"),
          ("X-Trace", "1"), ("Authorization", "Bearer client-oauth"), ("anthropic-version", "2023-06-01"),
          ("anthropic-beta", "context-1m"), ("Transfer-Encoding", "chunked")]


def test_zai_lane_swaps_credentials_x_api_key():
    out = upstream_request_headers("zai", CLIENT, CREDS)
    assert out["x-api-key"] == "zai-KEY"
    assert "authorization" not in out
    assert out["anthropic-version"] == "2023-06-01" and out["anthropic-beta"] == "context-1m"
    for gone in ("host", "content-length", "connection", "x-trace", "transfer-encoding"):
        assert gone not in out


def test_zai_lane_bearer_mode():
    out = upstream_request_headers("zai", CLIENT + [("x-api-key", "client-key")],
                                   CREDS._replace(zai_header_mode="authorization"))
    assert out["authorization"] == "Bearer zai-KEY"
    assert "x-api-key" not in out


def test_anthropic_lane_keeps_client_credential():
    out = upstream_request_headers("anthropic", CLIENT, CREDS)
    assert out["authorization"] == "Bearer client-oauth"
    assert "x-api-key" not in out
    assert "zai-KEY" not in out.values()


def test_anthropic_lane_falls_back_to_shim_token():
    out = upstream_request_headers("anthropic", [("anthropic-version", "2023-06-01")], CREDS)
    assert out == {"anthropic-version": "2023-06-01", "authorization": "Bearer ant-TOKEN",
                   "accept-encoding": "identity"}
    out = upstream_request_headers("anthropic", [], CREDS._replace(anthropic_auth_token=""))
    assert out == {"x-api-key": "ant-KEY", "accept-encoding": "identity"}


@pytest.mark.parametrize("header", [("x-api-key", "zai-KEY"), ("authorization", "Bearer zai-KEY"),
                                    ("authorization", "Bearer sess-1")])
def test_anthropic_lane_never_forwards_foreign_tokens(header):
    out = upstream_request_headers("anthropic", [header], CREDS, frozenset({"sess-1"}))
    assert "zai-KEY" not in " ".join(out.values()) and "sess-1" not in " ".join(out.values())
    assert out["authorization"] == "Bearer ant-TOKEN"


def test_response_headers_drop_framing_and_keep_the_rest():
    up = [("Content-Type", "text/event-stream"), ("Content-Length", "5"), ("Date", "x"),
          ("Server", "mock"), ("Transfer-Encoding", "chunked"), ("request-id", "req_1"),
          ("anthropic-ratelimit-requests-remaining", "9"), ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")]
    out = client_response_headers(up)
    assert out == [("Content-Type", "text/event-stream"), ("request-id", "req_1"),
                   ("anthropic-ratelimit-requests-remaining", "9"), ("Set-Cookie", "a=1"),
                   ("Set-Cookie", "b=2")]


@pytest.mark.parametrize("lane", ["anthropic", "zai"])
def test_every_upstream_is_asked_for_plain_bytes_whatever_the_client_accepts(lane):
    # the shim meters every answer: a gzip body would hide its tokens and break the SSE meter
    out = upstream_request_headers(lane, [("Accept-Encoding", "gzip, deflate, br")], CREDS)
    assert out["accept-encoding"] == "identity"
    assert openai_request_headers("k")["accept-encoding"] == "identity"


@pytest.mark.parametrize("value, token", [
    ("Bearer abc", "abc"), ("bearer abc", "abc"), ("Bearer\tabc", "abc"), ("Bearer   abc", "abc"),
    ("Bearer \t \tabc \t", "abc"), ("BEARER\t\tabc", "abc"), ("  Bearer abc", "abc"),
])
def test_a_bearer_token_after_any_whitespace(value, token):
    from proxy.core.headers import bearer_token, bearer_value
    assert bearer_token(value) == token and bearer_value(value) == token


@pytest.mark.parametrize("value", ["Bearerabc", "Basic abc", "abc", "Bearer", ""])
def test_not_a_bearer_value_is_the_whole_value(value):
    from proxy.core.headers import bearer_token, bearer_value
    assert bearer_token(value) is None and bearer_value(value) == value.strip()


@pytest.mark.parametrize("value", ["Bearer\tsess-1", "Bearer   sess-1", "bearer \t sess-1"])
def test_a_session_token_after_tabs_or_spaces_is_never_forwarded(value):
    out = upstream_request_headers("anthropic", [("authorization", value)], CREDS, frozenset({"sess-1"}))
    assert "sess-1" not in " ".join(out.values())
    assert out["authorization"] == "Bearer ant-TOKEN"


@pytest.mark.parametrize("lane", ["anthropic", "zai"])
def test_the_shims_own_headers_never_go_upstream(lane):
    own = [("X-CCP-Admin-Token", "admin-T"), ("x-ccp-actor", "ccp pause"),
           ("x-ccp-request-id", "r-1"), ("X-Ccp-Anything", "v")]
    out = upstream_request_headers(lane, CLIENT + own, CREDS)
    assert not [k for k in out if k.startswith("x-ccp")]
    assert "admin-T" not in out.values()


def test_a_client_credential_equal_to_a_never_token_is_replaced_by_the_lanes_own():
    """The shim passes the admin token among `session_tokens` (proxy.pipeline.state): a client
    that authenticates to the shim with it never has it forwarded as an Anthropic credential."""
    for header in (("authorization", "Bearer admin-T"), ("x-api-key", "admin-T")):
        out = upstream_request_headers("anthropic", [header], CREDS, frozenset({"admin-T"}))
        assert "admin-T" not in " ".join(out.values())
        assert out["authorization"] == "Bearer ant-TOKEN"
