"""Cross-lane thinking hygiene.

Extended-thinking blocks carry a provider's signature, and a provider rejects a request that replays a
thinking block signed by someone else. A conversation that alternates lanes (Haiku on Z.AI, Sonnet on
Anthropic) carries such blocks across. The shim learns which lane signed what from the answers it
relays (`SignatureBook.learn`), and before sending a request to a lane it drops the `thinking` /
`redacted_thinking` blocks that another lane signed (`strip_foreign_thinking`). Blocks it never saw
(signed before the shim started, or on a direct connection) are kept: the shim only removes what it
knows to be foreign. This is the one case where a same-protocol request body is rewritten.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterable

BOOK_SIZE = 50_000  # signatures remembered (LRU); ~100 bytes each


def _key(signature: str) -> str:
    return hashlib.sha256(signature.encode()).hexdigest()[:32]


def block_signature(block: dict) -> str | None:
    if block.get("type") == "thinking":
        sig = block.get("signature")
    elif block.get("type") == "redacted_thinking":
        sig = block.get("data")
    else:
        return None
    return sig if isinstance(sig, str) and sig else None


class SignatureBook:
    """Which lane signed which thinking block (bounded, thread-safe)."""

    def __init__(self, size: int = BOOK_SIZE) -> None:
        self._size = size
        self._lanes: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def learn(self, signatures: Iterable[str], lane: str) -> None:
        with self._lock:
            for sig in signatures:
                if not sig:
                    continue
                key = _key(sig)
                self._lanes[key] = lane
                self._lanes.move_to_end(key)
            while len(self._lanes) > self._size:
                self._lanes.popitem(last=False)

    def lane_of(self, signature: str) -> str | None:
        with self._lock:
            return self._lanes.get(_key(signature))

    def __len__(self) -> int:
        return len(self._lanes)


def signatures_in_message(message: object) -> list[str]:
    """Signatures of the thinking blocks in a Messages response body (parsed)."""
    if not isinstance(message, dict):
        return []
    return [
        s for b in message.get("content") or [] if isinstance(b, dict) if (s := block_signature(b))
    ]


def might_carry_thinking(body: bytes) -> bool:
    """Cheap pre-check on the raw request: skip the JSON walk for the common case."""
    return b'"signature"' in body or b"redacted_thinking" in body


def strip_foreign_thinking(payload: dict, lane: str, book: SignatureBook) -> int:
    """Drop, in place, assistant thinking blocks that another lane signed; returns how many."""
    stripped = 0
    for message in payload.get("messages") or []:
        if not isinstance(message, dict) or message.get("role") != "assistant":
            continue
        content = message.get("content")
        if not isinstance(content, list):
            continue
        kept = []
        for block in content:
            sig = block_signature(block) if isinstance(block, dict) else None
            signer = book.lane_of(sig) if sig else None
            if signer is not None and signer != lane:
                stripped += 1
                continue
            kept.append(block)
        if len(kept) != len(content):
            message["content"] = kept or [{"type": "text", "text": ""}]
    return stripped
