"""JSON text as UTF-8 also when a string holds a lone surrogate (proxy.core.jsontext)."""
import json

import pytest

from proxy.core.jsontext import dumps, escape_surrogates, safe_str, utf8

pytestmark = pytest.mark.quick

VALUES = ["\ud800", "a\udfffb", "\ude00\ud83d", "é\ud800日😀", "\x00", "plain", ""]


@pytest.mark.parametrize("value", VALUES)
def test_dumps_is_utf8_json_of_the_same_value(value):
    body = {"k\udc00": [value, {"t": value}]}
    data = dumps(body, separators=(",", ":"))
    data.decode("utf-8")  # strict UTF-8
    assert json.loads(data) == body


def test_only_surrogates_are_escaped():
    assert utf8('"é日😀"') == '"é日😀"'.encode()
    assert utf8('"a\ud800"') == b'"a\\ud800"'
    assert escape_surrogates('"\udbff\udc00"') == '"\\udbff\\udc00"'


def test_safe_str_is_encodable_and_keeps_other_text():
    assert safe_str("claude-\ud800") == "claude-\\ud800"
    assert safe_str("é日") == "é日" and safe_str("ascii") == "ascii"
    for value in VALUES:
        safe_str(value).encode("utf-8")
