import pytest

from proxy.core.thinking import (
    SignatureBook,
    might_carry_thinking,
    signatures_in_message,
    strip_foreign_thinking,
)

pytestmark = pytest.mark.quick


def _conversation():
    return {"messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "a", "signature": "sig-zai-1"},
                                          {"type": "text", "text": "from zai"}]},
        {"role": "user", "content": "more"},
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "b", "signature": "sig-anth-1"},
                                          {"type": "redacted_thinking", "data": "red-zai-2"},
                                          {"type": "text", "text": "from anthropic"}]},
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "c", "signature": "never-seen"}]},
    ]}


def test_strips_only_blocks_another_lane_signed():
    book = SignatureBook()
    book.learn(["sig-zai-1", "red-zai-2"], "zai")
    book.learn(["sig-anth-1"], "anthropic")
    convo = _conversation()
    assert strip_foreign_thinking(convo, "anthropic", book) == 2
    types = [[b["type"] for b in m["content"]] for m in convo["messages"] if m["role"] == "assistant"]
    assert types == [["text"], ["thinking", "text"], ["thinking"]]  # unknown signatures are kept
    convo = _conversation()
    assert strip_foreign_thinking(convo, "zai", book) == 1


def test_book_is_bounded_and_reads_messages():
    book = SignatureBook(size=2)
    book.learn(["a", "b", "c"], "zai")
    assert len(book) == 2 and book.lane_of("a") is None and book.lane_of("c") == "zai"
    msg = {"content": [{"type": "thinking", "signature": "s1"}, {"type": "text", "text": "x"},
                       {"type": "redacted_thinking", "data": "d1"}]}
    assert signatures_in_message(msg) == ["s1", "d1"]
    assert might_carry_thinking(b'{"signature":"x"}') and not might_carry_thinking(b'{"model":"m"}')
