import json

import pytest

from proxy.sinks.tee import trim, write_tee

pytestmark = pytest.mark.quick


def test_tee_is_redacted_and_trimmed(tmp_path):
    secret = "sk-ant-test-token-5be04d17"
    path = write_tee(tmp_path, "r1", {"messages": [{"content": "x" * 5000 + secret}],
                                      "metadata": {"api_key": "abc"}},
                     f'{{"text": "{secret}"}}'.encode() * 1000, [secret])
    raw = path.read_text()
    assert secret not in raw and path.parent.name == "tee"
    sample = json.loads(raw)
    assert sample["request"]["messages"][0]["content"].endswith("more chars]")
    assert len(sample["answer_head"]) <= 4096


def test_trim_leaves_short_values():
    assert trim({"a": ["b", 1, None]}) == {"a": ["b", 1, None]}


def test_a_lone_surrogate_or_nul_is_written_as_valid_json(tmp_path):
    request = {"model": "m\ud800", "messages": [{"content": "a\udfff\x00b"}]}
    path = write_tee(tmp_path, "r1", request, b"", [])
    path.read_bytes().decode("utf-8")
    assert json.loads(path.read_text())["request"] == request
