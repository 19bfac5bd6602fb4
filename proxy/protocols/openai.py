"""OpenAI Chat Completions (GLM, DeepSeek, Kimi, vLLM, OpenRouter, Ollama, …), converted to and
from Anthropic Messages by proxy.core.convert."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from proxy.core import convert
from proxy.core.convert.ids import new_message_id
from proxy.core.convert.requests import json_bytes
from proxy.core.headers import openai_request_headers
from proxy.core.sse import exact_loads
from proxy.protocols.base import ProtocolAdapter

OPENAI = "openai"


class OpenAIProtocol(ProtocolAdapter):
    name = OPENAI
    paths = ("/v1/chat/completions",)
    default_header_mode = "authorization"
    counts_tokens = False  # no count_tokens endpoint: the shim answers with a local estimate

    def upstream_url(self, base_url: str, op: str, query: str) -> str:
        return (
            base_url + "/chat/completions"
        )  # the client's query is Anthropic's, not the provider's

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
        """Nothing of the client's: JSON, and the provider's own key."""
        return openai_request_headers(api_key, header_mode)

    def error_body(self, error_type: str, message: str) -> bytes:
        obj = {"error": {"message": message, "type": error_type, "param": None, "code": None}}
        return json.dumps(obj, separators=(",", ":")).encode()

    def stream_error(self, error_type: str, message: str) -> bytes:
        # a `data:` line with the error object, as OpenAI-compatible servers end a failed stream
        # (the SDKs raise it as an APIError); no [DONE] follows
        return b"data: " + self.error_body(error_type, message) + b"\n\n"

    def request_from_anthropic(
        self, payload: dict | None, body: bytes, model: str, tool_names: dict[str, str]
    ) -> tuple[dict, bytes]:
        if payload is None:  # converted from the bytes, without building the whole payload
            converted = convert.anthropic_body_to_openai(body, model, tool_names)
            if converted is not None:
                return converted
            payload = exact_loads(body)
        out = convert.anthropic_to_openai_request(payload, model, tool_names)
        return out, json_bytes(out)

    def request_to_anthropic(self, payload: dict, model: str) -> dict:
        return convert.openai_to_anthropic_request(payload, model)

    def answer_to_anthropic(
        self, answer: dict, model: str, stop_sequences: Any, tool_names: dict[str, str] | None
    ) -> dict:
        return convert.openai_to_anthropic_response(answer, model, stop_sequences, tool_names)

    def answer_from_anthropic(self, message: dict, model: str, created: int) -> dict:
        return convert.anthropic_to_openai_response(message, model, created)

    def stream_to_anthropic(
        self, model: str, stop_sequences: Any, tool_names: dict[str, str] | None
    ):
        return convert.OpenAIToAnthropicStream(model, stop_sequences, tool_names)

    def stream_from_anthropic(self, model: str, created: int):
        return convert.AnthropicToOpenAIStream(model, created)

    def error_to_anthropic(self, status: int, body: bytes) -> tuple[int, dict]:
        return convert.openai_error_to_anthropic(status, body)

    def error_from_anthropic(self, status: int, body: bytes) -> tuple[int, dict]:
        return convert.anthropic_error_to_openai(status, body)

    def recover_to_anthropic(self, status: int, body: bytes, model: str) -> dict | None:
        """OpenAI's 400 for a request that hit max_tokens is Anthropic's 200 with max_tokens."""
        if not convert.is_max_tokens_error(status, body):
            return None
        return convert.max_tokens_message(new_message_id(), model)
