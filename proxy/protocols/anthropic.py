"""Anthropic Messages: the protocol Claude Code speaks, and the pivot of every conversion."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from proxy.core.headers import LaneCredentials, upstream_request_headers
from proxy.core.routing import LANE_ANTHROPIC
from proxy.core.sse import error_event
from proxy.protocols.base import ProtocolAdapter

ANTHROPIC = "anthropic"
COUNT_TOKENS = "count_tokens"


class AnthropicProtocol(ProtocolAdapter):
    name = ANTHROPIC
    paths = ("/v1/messages", "/v1/message", "/v1/messages/count_tokens")
    default_header_mode = "x-api-key"
    counts_tokens = True

    def upstream_url(self, base_url: str, op: str, query: str) -> str:
        url = base_url + ("/v1/messages/count_tokens" if op == COUNT_TOKENS else "/v1/messages")
        return url + "?" + query if query else url

    def request_headers(
        self,
        client_headers: Iterable[tuple[str, str]],
        *,
        lane: str,
        api_key: str,
        header_mode: str,
        credentials: Any,
        never: frozenset,
        profile: Any,
    ) -> dict[str, str]:
        """The lane's header hygiene over the client's headers: the anthropic lane keeps the
        client's own login (or the shim's keys), another lane gets its provider's key."""
        if lane != LANE_ANTHROPIC:
            credentials = LaneCredentials(zai_api_key=api_key, zai_header_mode=header_mode)
        return upstream_request_headers(lane, client_headers, credentials, never, profile)

    def error_body(self, error_type: str, message: str) -> bytes:
        obj = {"type": "error", "error": {"type": error_type, "message": message}}
        return json.dumps(obj, separators=(",", ":")).encode()

    def stream_error(self, error_type: str, message: str) -> bytes:
        return error_event(error_type, message)  # `event: error`, as the Messages API sends it
