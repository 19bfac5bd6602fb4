import pytest

pytestmark = pytest.mark.quick


def test_loads_gives_json_results_for_what_orjson_refuses():
    import json

    from proxy.core.payload import _loads, exact_reading
    for body in (b'{"model":"m","x":NaN}', b'{"model":"\\ud800"}',
                 b'{"model":"m","a":[1,2.5,"\xc3\xa9"]}'):
        assert repr(_loads(body)) == repr(json.loads(body))
    big = b'{"model":"m","n":123456789012345678901234567890}'
    assert _loads(big)["model"] == "m"  # enough to route; the exact reading is for rewrites
    assert exact_reading(big, _loads(big))["n"] == 123456789012345678901234567890
    with pytest.raises(ValueError):
        _loads(b'{"model":')


def test_loads_refuses_the_nesting_json_refuses():
    from proxy.core.payload import _loads
    with pytest.raises(RecursionError):
        _loads(b'{"model":"m","messages":' + b"[" * 1_000 + b"]" * 1_000 + b"}")


def test_orjson_reading_pads_a_large_body_to_leave_deep_nesting_to_json():
    import json

    from proxy.core import payload as exchange
    from proxy.core.payload import (
        _REFUSED,
        ORJSON_MAX_DEPTH,
        _loads,
        _orjson_loads,
    )
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

    from proxy.core import payload as exchange
    from proxy.core.payload import _read_json
    from proxy.core.sse import exact_loads as _exact_loads
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


def _json_route(body: bytes):
    """json.loads' model and stream of `body`, or None where json refuses it or it is no object
    with a string model."""
    import json
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, dict) or not isinstance(value.get("model"), str):
        return None
    return {"model": value["model"], "stream": value.get("stream")}


def test_the_route_only_reading_never_accepts_what_json_refuses():
    from proxy.core.payload import route_fields
    odd = [b'{"model":"m","x":NaN}', b'\xef\xbb\xbf{"model":"m"}', b'{"model":"m","s":"\\ud800"}',
           b'{"model":"m","s":"\xff"}', b'{"model":"m","s":"\xed\xa0\x80"}',
           '{"model":"é","s":"ß"}'.encode(), '{"model":"m"}'.encode("utf-16"),
           b'{"model":"a","stream":true,"model":"b","stream":false}', b'{"model":5}', b'[1]',
           b'{"model":"m","n":123456789012345678901234567890,"f":1e999}', b'{"model":"m"} x',
           b'{"model":"m","stream":{"deep":[1,{"a":null}]}}', b'{"model":"m",}', b'{"stream":true}']
    for body in odd:
        got = route_fields(body)
        assert got is None or got == _json_route(body), body
    assert route_fields(odd[7]) == {"model": "b", "stream": False}  # the last of duplicates
    assert route_fields(odd[5]) == {"model": "é", "stream": None}
    for body in odd[:5] + odd[6:7]:  # json's to decide: NaN, BOM, surrogates, bad UTF-8, UTF-16
        assert route_fields(body) is None


def test_the_route_only_reading_gives_up_on_nesting_before_json_does():
    from proxy.core.payload import _read_json, route_fields

    def accepted(fn, body):
        try:
            return fn(body) is not None
        except RecursionError:
            return False

    for shape in (lambda d: b"[" * d + b"]" * d, lambda d: b'[{"a":' * d + b"1" + b'}]' * d):
        depths = range(400, 560) if b"{" in shape(1) else range(850, 1100)
        for d in depths:
            body = b'{"model":"m","n":' + shape(d) + b"}"
            if accepted(route_fields, body):
                assert accepted(_read_json, body), d
        assert not accepted(route_fields, b'{"model":"m","n":' + shape(depths[-1]) + b"}")


@pytest.mark.parametrize("seed", range(3))
def test_the_route_only_reading_agrees_with_json_on_random_bodies(seed):
    import json
    import random

    from proxy.core.payload import route_fields
    rng = random.Random(seed)
    atoms = [None, True, False, 0, -1.5, 10**30, "", "x", "é\u2028", "\\", '"', "\ud83d\ude00"]

    def value(depth=0):
        if depth > 4 or rng.random() < 0.4:
            return rng.choice(atoms)
        if rng.random() < 0.5:
            return [value(depth + 1) for _ in range(rng.randint(0, 4))]
        return {rng.choice(["a", "model", "stream", "é"]): value(depth + 1)
                for _ in range(rng.randint(0, 4))}

    for _ in range(400):
        doc = {"model": rng.choice(["claude-sonnet-4-5", "é", " "]), "messages": value()}
        if rng.random() < 0.5:
            doc["stream"] = rng.choice([True, False, None, 1, "true"])
        body = json.dumps(doc, ensure_ascii=rng.random() < 0.5).encode("utf-8", "surrogatepass")
        if rng.random() < 0.3:  # one byte changed: mostly no longer JSON, sometimes still
            i = rng.randrange(len(body))
            body = body[:i] + bytes([rng.randrange(256)]) + body[i + 1:]
        got = route_fields(body)
        assert got is None or got == _json_route(body), body


@pytest.mark.parametrize("piece", [1, 2, 3, 5, 4096])
def test_is_utf8_piece_by_piece_agrees_with_decoding_whole(monkeypatch, piece):
    """Sequences cut at every piece boundary, invalid and truncated ones, ASCII runs between."""
    import random

    from proxy.core import payload as exchange
    monkeypatch.setattr(exchange, "UTF8_PIECE", piece)
    rng = random.Random(piece)
    parts = [b"a", b"{}", "é".encode(), "日".encode(), "\U0001f600".encode(), b"\xff", b"\xc3",
             b"\xe6\x97", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xc0\xaf", b"\x80", b"x" * 9000]
    checked = 0
    for _ in range(1500):
        body = b"".join(rng.choice(parts) for _ in range(rng.randint(1, 12)))
        try:
            body.decode()
            expected = True
        except UnicodeDecodeError:
            expected = False
        assert exchange.is_utf8(body) is expected, body[:80]
        checked += expected
    assert 20 < checked < 1480  # both answers were exercised
