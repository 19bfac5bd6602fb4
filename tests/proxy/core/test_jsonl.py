"""proxy.core.jsonl: the one JSON Lines reader (records of lines, bad lines counted, blank ones not)."""
import pytest

from proxy.core.jsonl import Records, record_of

pytestmark = pytest.mark.quick


def test_record_of_is_the_object_on_a_line_or_none():
    assert record_of('{"rid": "a", "n": 1}\n') == {"rid": "a", "n": 1}
    assert record_of(b'{"rid": "b"}') == {"rid": "b"}
    assert [record_of(x) for x in ("", "  \n", "[1]", "42", '"s"', '{"rid": "to', b"\xff{}")] == \
        [None] * 7


def test_records_skip_blank_lines_and_count_the_bad_ones_also_a_torn_last_line():
    lines = ['{"rid": "a"}\n', "\n", "   \n", "garbage\n", "[1, 2]\n", '{"rid": "b"}\n',
             '{"rid": "torn", "la']
    reader = Records(lines)
    assert reader.bad == 0  # nothing read yet
    assert [r["rid"] for r in reader] == ["a", "b"]
    assert reader.bad == 3


def test_records_read_bytes_lines_and_any_iterable_lazily():
    def lines():
        yield b'{"rid": "x"}\n'
        yield b'{"rid": "y"'
        raise AssertionError("read past what was asked")
    it = iter(Records(lines()))
    assert next(it) == {"rid": "x"}
