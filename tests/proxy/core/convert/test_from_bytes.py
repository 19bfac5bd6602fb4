"""Conversion from the body's bytes agrees with parsing it whole and converting (the exact path),
or declines: the fixture cases, random bodies, and what json.loads reads differently."""
import json
import random
from pathlib import Path

import pytest

from proxy.core.convert import (
    ConversionError,
    anthropic_body_to_openai,
    anthropic_to_openai_request,
)

pytestmark = pytest.mark.quick

CASES_DIR = Path(__file__).resolve().parents[4] / "fixtures" / "conversion"


def _exact(body: bytes, model: str):
    return anthropic_to_openai_request(json.loads(body), model)


@pytest.mark.parametrize("path", sorted(CASES_DIR.glob("a2o_request*.json")), ids=lambda p: p.stem)
def test_fixture_cases_convert_the_same(path):
    case = json.loads(path.read_text())
    body = json.dumps(case["input"]).encode()
    out, written = anthropic_body_to_openai(body, case["model"])
    assert json.loads(written) == case["expected"]


def test_tool_schemas_are_forwarded_as_written_and_tools_without_one_dropped():
    body = (b'{"model":"m","messages":[{"role":"user","content":"hi"}],"tools":['
            b'{"name":"a","description":"d","input_schema": {"type" : "object", "n": 12345678901234567890123}},'
            b'{"name":"b"},{"name":"c","input_schema":null,"cache_control":{"type":"ephemeral"}}],'
            b'"cache_control":{"x":[1,2,3]},"unknown":{"deep":[[[]]]}}')
    _, written = anthropic_body_to_openai(body, "glm")
    assert b'"parameters":{"type" : "object", "n": 12345678901234567890123}' in written
    assert json.loads(written) == _exact(body, "glm")
    assert [t["function"]["name"] for t in json.loads(written)["tools"]] == ["a", "c"]


@pytest.mark.parametrize("body", [
    b'{"model":"m","messages":[],"temperature":NaN}',  # json reads NaN, msgspec refuses it
    b'{"model":"m","messages":[],"temperature":1e999}',  # json: inf
    b'{"model":"m","messages":[{"role":"user","content":"\\ud800"}]}',  # a lone surrogate
    b'{"model":"m","messages":[],"tools":["not an object"]}',
    b'{"model":"m","messages":[],"tools":{"a":1}}',
    b'{"model":"m","messages":[],"tools":[{"name":"a","input_schema":{"x":NaN}}]}',
    b'[1, 2]',
    b'{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"x","n":'
    b'123456789012345678901234567890}]}],"max_tokens":123456789012345678901234567890}',
])
def test_declines_where_json_must_decide(body):
    assert anthropic_body_to_openai(body, "glm") is None


def test_conversion_errors_are_the_converters():
    body = b'{"model":"m","messages":[{"role":"robot","content":"x"}]}'
    with pytest.raises(ConversionError) as fast:
        anthropic_body_to_openai(body, "glm")
    with pytest.raises(ConversionError) as exact:
        _exact(body, "glm")
    assert str(fast.value) == str(exact.value)


@pytest.mark.parametrize("seed", range(4))
def test_random_requests_convert_the_same(seed):
    rng = random.Random(seed)
    atoms = [None, True, False, 0, -2.5, 10**25, "", "é日\u2028", '"\\', 7]

    def value(depth=0):
        if depth > 3 or rng.random() < 0.5:
            return rng.choice(atoms)
        if rng.random() < 0.5:
            return [value(depth + 1) for _ in range(rng.randint(0, 3))]
        return {rng.choice(["a", "type", "text", "é"]): value(depth + 1) for _ in range(rng.randint(0, 3))}

    def block():
        kind = rng.choice(["text", "tool_use", "tool_result", "thinking", "image", "other"])
        b = {"type": kind, "text": rng.choice(["", "hello", "ß"]), "cache_control": value()}
        if kind == "tool_use":
            b.update(id="t1", name="f", input=rng.choice([{"a": value()}, None, {}]))
        if kind == "tool_result":
            b.update(tool_use_id="t1", content=rng.choice(["r", [{"type": "text", "text": "x"}], None]),
                     is_error=rng.random() < 0.3)
        if kind == "thinking":
            b.update(thinking="hm", signature="s")
        return b

    checked = 0
    for _ in range(150):
        doc = {"model": "claude", "messages": [
            {"role": rng.choice(["user", "assistant"]),
             "content": rng.choice(["plain", [block() for _ in range(rng.randint(0, 4))]])}
            for _ in range(rng.randint(1, 6))]}
        for key, choices in (("system", ["s", [{"type": "text", "text": "t"}]]),
                             ("max_tokens", [10, 10**20]), ("temperature", [0.5, None]),
                             ("stream", [True, False]), ("metadata", [{"user_id": "u"}, {}]),
                             ("stop_sequences", [["x"], []]), ("thinking", [{"type": "enabled",
                                                                            "budget_tokens": 5000}]),
                             ("tool_choice", [{"type": "any"}, {"type": "tool", "name": "f"}]),
                             ("tools", [[{"name": "f", "description": "d", "input_schema": value()}]]),
                             ("context_management", [value()])):
            if rng.random() < 0.5:
                doc[key] = rng.choice(choices)
        body = json.dumps(doc, ensure_ascii=rng.random() < 0.5).encode()
        if rng.random() < 0.3:  # the same keys twice: both readings keep the last
            body = body[:-1] + b',"max_tokens":77}'
        got = anthropic_body_to_openai(body, "glm")
        if got is None:  # only for what orjson cannot write (integers past 64 bits)
            assert b"100000000000000000000" in body or b"10000000000000000000000000" in body
            continue
        assert json.loads(got[1]) == _exact(body, "glm")
        checked += 1
    assert checked > 50
