import pytest

from proxy.catalog import Provider
from proxy.exchange import upstream_body, upstream_url, protocol_of
from proxy.settings import Secret, Settings
from proxy.state import ShimState

pytestmark = pytest.mark.quick


def _provider(protocol, base="http://up.test/base"):
    return Provider(name="p", protocol=protocol, base_url=base, api_key=Secret("k" * 10), key_env=None,
                    header_mode="authorization", source="test")


def test_protocol_by_path():
    assert protocol_of("/v1/chat/completions") == "openai"
    for path in ("/v1/messages", "/v1/message", "/v1/messages/count_tokens"):
        assert protocol_of(path) == "anthropic"


def test_urls_follow_each_sdk_convention():
    assert upstream_url(_provider("openai"), "/v1/messages", "beta=true") == \
        "http://up.test/base/chat/completions"
    assert upstream_url(_provider("anthropic"), "/v1/messages", "beta=true") == \
        "http://up.test/base/v1/messages?beta=true"


def test_same_protocol_body_is_untouched_unless_a_route_renames_the_model():
    state = ShimState(Settings.from_env({}), None)
    payload = {"model": "m", "messages": []}
    body = b'{"model": "m", "messages": []}'
    rec = {"rewrites": None}
    out, out_body = upstream_body(dict(payload), body, "anthropic", _provider("anthropic"), "p", "m", state, rec)
    assert out_body is body and rec["rewrites"] is None
    out, out_body = upstream_body(dict(payload), body, "anthropic", _provider("anthropic"), "p", "m2", state, rec)
    assert out["model"] == "m2" and b'"m2"' in out_body and rec["rewrites"] == ["model"]


def test_cross_protocol_body_is_converted():
    state = ShimState(Settings.from_env({}), None)
    payload = {"model": "m", "max_tokens": 5, "system": "s", "messages": [{"role": "user", "content": "hi"}]}
    out, out_body = upstream_body(payload, b"", "anthropic", _provider("openai"), "p", "up-m", state, {})
    assert out["model"] == "up-m" and out["messages"][0] == {"role": "system", "content": "s"}
    assert b'"up-m"' in out_body


def test_loads_gives_json_results_for_what_orjson_refuses():
    import json

    from proxy.exchange import _loads, exact_reading
    for body in (b'{"model":"m","x":NaN}', b'{"model":"\\ud800"}',
                 b'{"model":"m","a":[1,2.5,"\xc3\xa9"]}'):
        assert repr(_loads(body)) == repr(json.loads(body))
    big = b'{"model":"m","n":123456789012345678901234567890}'
    assert _loads(big)["model"] == "m"  # enough to route; the exact reading is for rewrites
    assert exact_reading(big, _loads(big))["n"] == 123456789012345678901234567890
    with pytest.raises(ValueError):
        _loads(b'{"model":')


def test_loads_refuses_the_nesting_json_refuses():
    from proxy.exchange import _loads
    with pytest.raises(RecursionError):
        _loads(b'{"model":"m","messages":' + b"[" * 1_000 + b"]" * 1_000 + b"}")


def test_orjson_reading_pads_a_large_body_to_leave_deep_nesting_to_json():
    import json

    from proxy import exchange
    from proxy.exchange import _REFUSED, ORJSON_MAX_DEPTH, _loads, _orjson_loads
    filler = '"' + "x" * (exchange._PAD_FROM_BYTES + 10) + '"'

    def body(depth: int) -> bytes:  # the object, and lists inside it: `depth` levels in all
        inner = depth - 1
        return (f'{{"model":"m","f":{filler},"n":' + "[" * inner + "]" * inner + "}").encode()

    assert _orjson_loads(body(ORJSON_MAX_DEPTH)) == json.loads(body(ORJSON_MAX_DEPTH))
    assert _orjson_loads(body(ORJSON_MAX_DEPTH + 1)) is _REFUSED  # json's to decide
    assert _loads(body(ORJSON_MAX_DEPTH + 1)) == json.loads(body(ORJSON_MAX_DEPTH + 1))
    with pytest.raises(RecursionError):
        _loads(body(1_000))
    big = ("[" + filler + "]").encode()
    for bad in (big + b",[2]", b"1]," + big + b",[2", b" " * len(big), big[:-1]):
        assert _orjson_loads(bad) is _REFUSED
        with pytest.raises(ValueError):
            _loads(bad)
    assert _orjson_loads(big + b"  ") == [filler[1:-1]]


def test_the_routing_reading_says_whether_it_is_json_loads_own():
    import json

    from proxy import exchange
    from proxy.exchange import _read_json
    from proxy.sse import exact_loads as _exact_loads
    odd = (b'{"model":"m","n":123456789012345678901234567890,"x":NaN,"d":1,"d":2}',
           b'\xef\xbb\xbf{"model":"m"}', b'{"model":"m","s":"\\ud800"}',
           b'{"model":"m","n":' + b"[" * 300 + b"]" * 300 + b"}")
    for body in odd:
        value, exact = _read_json(body)
        assert repr(_exact_loads(body)) == repr(json.loads(body))
        if exact:
            assert repr(value) == repr(json.loads(body))
    if exchange.jiter is not None:  # the anthropic SDK's parser reads big integers as they are
        value, exact = _read_json(odd[0])
        assert exact and repr(value) == repr(json.loads(odd[0]))
        assert _read_json(odd[3])[1] is False  # past jiter's 200 levels: orjson's reading
