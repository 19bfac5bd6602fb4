"""Converted answers carry fresh ids: fixtures write `<fresh>` where an id is made anew each time."""
import re

FRESH = "<fresh>"
MESSAGE_ID = re.compile(r"^msg_01[A-Za-z0-9]{22}$")
TOOL_ID = re.compile(r"^toolu_(01[A-Za-z0-9]{22}|ccp_[A-Za-z0-9]{8}[A-Za-z0-9_-]+)$")
FRESH_BYTES = re.compile(rb"\b(msg_01|toolu_01)[A-Za-z0-9]{22}\b")


def settle_fresh_ids(message: dict, expected: dict) -> dict:
    """`message` with each fresh id (checked for its shape) written as the fixture writes it."""
    message = {**message}
    if expected.get("id") == FRESH:
        assert MESSAGE_ID.match(message["id"]), message["id"]
        message["id"] = FRESH
    blocks = []
    for block, want in zip(message.get("content") or [], expected.get("content") or []):
        if block.get("type") == "tool_use" and want.get("id") == FRESH:
            assert TOOL_ID.match(block["id"]), block["id"]
            block = {**block, "id": FRESH}
        blocks.append(block)
    message["content"] = blocks + list(message.get("content") or [])[len(blocks):]
    return message
