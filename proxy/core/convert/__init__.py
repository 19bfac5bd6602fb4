"""Protocol conversion between Anthropic Messages and OpenAI Chat Completions: pure, no I/O.

requests   request bodies, both directions
from_bytes Anthropic → OpenAI requests read from the body's bytes (the shim's hot path)
responses  whole responses, both directions (and the shared stop-reason/usage vocabularies)
streams    SSE streams, both directions, fed chunk by chunk (streams_openai: Anthropic → OpenAI;
           framing: the SSE reading and writing both share)
ids        fresh message and tool-use ids, and provider tool-call ids carried reversibly
errors     ConversionError and upstream error bodies, both directions
tokens     a local estimate for count_tokens
"""

from proxy.core.convert.errors import (
    ConversionError,
    anthropic_error_to_openai,
    inband_error_type,
    is_max_tokens_error,
    max_tokens_message,
    openai_error_to_anthropic,
)
from proxy.core.convert.from_bytes import anthropic_body_to_openai
from proxy.core.convert.requests import (
    anthropic_to_openai_request,
    openai_to_anthropic_request,
)
from proxy.core.convert.responses import (
    anthropic_to_openai_response,
    openai_to_anthropic_response,
)
from proxy.core.convert.streams import (
    AnthropicToOpenAIStream,
    OpenAIToAnthropicStream,
    message_events,
)
from proxy.core.convert.tokens import estimate_tokens

__all__ = [
    "AnthropicToOpenAIStream",
    "ConversionError",
    "OpenAIToAnthropicStream",
    "anthropic_body_to_openai",
    "anthropic_error_to_openai",
    "anthropic_to_openai_request",
    "anthropic_to_openai_response",
    "estimate_tokens",
    "inband_error_type",
    "is_max_tokens_error",
    "max_tokens_message",
    "message_events",
    "openai_error_to_anthropic",
    "openai_to_anthropic_request",
    "openai_to_anthropic_response",
]
