"""The one small interface every upstream protocol implements, and the conversion between two.

Anthropic Messages is the pivot: an adapter converts its protocol's requests, answers, streams and
errors to and from Anthropic's, and `Conversion` joins a client's protocol to a provider's through
it. Two protocols of which neither is Anthropic's are not joined (`Conversion` refuses them): with
only `anthropic` and `openai` every pair has the pivot on one side; a third protocol would chain
through it (docs/protocols.md).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from proxy.core import convert
from proxy.core.convert.requests import json_bytes
from proxy.core.sse import tokens_of_message

PIVOT = "anthropic"


class ProtocolAdapter:
    """One wire protocol. Subclasses set the class attributes and override what differs."""

    name: str = ""
    paths: tuple[str, ...] = ()  # the inbound model paths clients of this protocol use
    default_header_mode: str = "authorization"
    counts_tokens: bool = False  # whether providers of it answer /v1/messages/count_tokens

    # --- as a provider
    def upstream_url(self, base_url: str, op: str, query: str) -> str:
        raise NotImplementedError

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
        raise NotImplementedError

    # --- as the client's protocol
    def error_body(self, error_type: str, message: str) -> bytes:
        raise NotImplementedError

    def stream_error(self, error_type: str, message: str) -> bytes:
        """The in-stream event that tells a client its stream was cut (the bytes of one event)."""
        raise NotImplementedError

    # --- conversion to and from the pivot (not needed by the pivot itself)
    def request_from_anthropic(
        self, payload: dict | None, body: bytes, model: str, tool_names: dict[str, str]
    ) -> tuple[dict, bytes]:
        """(the request, its bytes); `payload` None: read from `body`, which routing found to be
        JSON as json.loads reads it."""
        raise NotImplementedError

    def request_to_anthropic(self, payload: dict, model: str) -> dict:
        raise NotImplementedError

    def answer_to_anthropic(
        self, answer: dict, model: str, stop_sequences: Any, tool_names: dict[str, str] | None
    ) -> dict:
        raise NotImplementedError

    def answer_from_anthropic(self, message: dict, model: str, created: int) -> dict:
        raise NotImplementedError

    def stream_to_anthropic(
        self, model: str, stop_sequences: Any, tool_names: dict[str, str] | None
    ):
        raise NotImplementedError

    def stream_from_anthropic(self, model: str, created: int):
        raise NotImplementedError

    def error_to_anthropic(self, status: int, body: bytes) -> tuple[int, dict]:
        raise NotImplementedError

    def error_from_anthropic(self, status: int, body: bytes) -> tuple[int, dict]:
        raise NotImplementedError

    def recover_to_anthropic(self, status: int, body: bytes, model: str) -> dict | None:
        """An error of this protocol that Anthropic would answer as a message, as that message."""
        return None

    def __repr__(self) -> str:
        return f"<protocol {self.name}>"


class Conversion:
    """A client protocol joined to a provider protocol (one of them the pivot)."""

    __slots__ = ("client", "provider", "to_provider")

    def __init__(self, client: ProtocolAdapter, provider: ProtocolAdapter) -> None:
        if PIVOT not in (client.name, provider.name):
            raise convert.ConversionError(
                "protocol",
                f"no conversion from {client.name} to {provider.name}: one side must be {PIVOT}",
            )
        self.client, self.provider = client, provider
        self.to_provider = client.name == PIVOT  # Anthropic client, other provider

    @property
    def meter_downstream(self) -> bool:
        """Which side of the stream is Anthropic's, and so what the SSE meter reads."""
        return self.to_provider

    def request(
        self, payload: dict | None, body: bytes, model: str, tool_names: dict[str, str]
    ) -> tuple[dict, bytes]:
        """The provider's request body: from the payload, or (payload None) from the bytes."""
        if self.to_provider:
            return self.provider.request_from_anthropic(payload, body, model, tool_names)
        assert payload is not None  # (read from the bytes only towards a provider: prepare.py)
        out = self.client.request_to_anthropic(payload, model)
        return out, json_bytes(out)

    def answer(
        self, upstream: dict, model: str, stop_sequences: Any, tool_names: dict[str, str] | None
    ) -> dict:
        if self.to_provider:
            return self.provider.answer_to_anthropic(upstream, model, stop_sequences, tool_names)
        return self.client.answer_from_anthropic(upstream, model, int(time.time()))

    def stream(self, model: str, stop_sequences: Any, tool_names: dict[str, str] | None):
        if self.to_provider:
            return self.provider.stream_to_anthropic(model, stop_sequences, tool_names)
        return self.client.stream_from_anthropic(model, int(time.time()))

    def error(self, status: int, body: bytes) -> tuple[int, dict]:
        if self.to_provider:
            return self.provider.error_to_anthropic(status, body)
        return self.client.error_from_anthropic(status, body)

    def recover(self, status: int, body: bytes, model: str) -> dict | None:
        return self.provider.recover_to_anthropic(status, body, model) if self.to_provider else None

    def tokens(self, upstream: dict, converted: dict) -> dict:
        """The record's tokens, read on the Anthropic side of the answer."""
        return tokens_of_message(converted if self.to_provider else upstream)

    def as_stream(self, stream: bool):
        """How a whole answer is written to a client that asked for a stream (None: as JSON)."""
        return convert.message_events if stream and self.to_provider else None
