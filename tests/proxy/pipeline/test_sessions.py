import pytest

from proxy.pipeline.sessions import SessionError, SessionRegistry, inbound_tokens, slug

pytestmark = pytest.mark.quick


def test_register_lookup_end():
    reg = SessionRegistry()
    s = reg.register("tok-1234567890", "sbx-42", "claude proxy demo")
    assert s.id.startswith("claude-proxy-demo-sbx-42-")
    assert reg.for_token("tok-1234567890") is s
    assert reg.register("tok-1234567890", "sbx-42", "claude proxy demo") is s  # idempotent
    assert "tok-1234567890" not in repr(s) and "tok-1234567890" not in str(s.public())
    assert reg.tokens() == {"tok-1234567890"}
    assert reg.end(s.id) is s and reg.for_token("tok-1234567890") is None and reg.list() == []


@pytest.mark.parametrize("args, field", [(("", "s", "t"), "session_token"), (("short", "s", "t"), "session_token"),
                                         (("tok-1234567890", " ", "t"), "sandbox_id"),
                                         (("tok-1234567890", "s", None), "task_name")])
def test_bad_registrations_name_the_field(args, field):
    with pytest.raises(SessionError, match=field):
        SessionRegistry().register(*args)


def test_same_token_for_another_sandbox_is_refused():
    reg = SessionRegistry()
    reg.register("tok-1234567890", "a", "t")
    with pytest.raises(SessionError, match="already registered"):
        reg.register("tok-1234567890", "b", "t")


def test_inbound_tokens_and_slug():
    assert inbound_tokens([("Authorization", "Bearer abc"), ("x-api-key", "def"), ("x", "y")]) == ["abc", "def"]
    assert slug("../../etc/passwd") == "etc-passwd"


def test_request_tokens_are_inbound_tokens_of_a_case_insensitive_header_map():
    from multidict import CIMultiDict

    from proxy.pipeline.sessions import inbound_tokens, request_tokens
    cases = [[("X-Api-Key", " k1 ")], [("Authorization", "Bearer  t1"), ("authorization", "t2")],
             [("authorization", "bearer x"), ("x-api-key", "k")],
             [("x-api-key", "k"), ("Authorization", "Bearer b")], [], [("x-api-key", "")],
             [("Authorization", "Bearer ")], [("content-type", "application/json")]]
    for pairs in cases:
        headers = CIMultiDict(pairs)
        assert request_tokens(headers) == inbound_tokens(headers.items()), pairs
    assert request_tokens(CIMultiDict([("x-api-key", "k"), ("authorization", "Bearer b")])) == \
        ["k", "b"]  # both: in the order they came


@pytest.mark.parametrize("value", ["Bearer\ttok-1234567890", "Bearer    tok-1234567890",
                                   "bearer \t tok-1234567890", "BEARER\t\ttok-1234567890 "])
def test_a_session_token_after_any_whitespace_is_the_session(value):
    from multidict import CIMultiDict

    from proxy.pipeline.sessions import request_tokens
    reg = SessionRegistry()
    session = reg.register("tok-1234567890", "a", "t")
    [token] = request_tokens(CIMultiDict([("Authorization", value)]))
    assert reg.for_token(token) is session
