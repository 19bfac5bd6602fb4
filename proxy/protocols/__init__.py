"""The upstream protocols, one adapter each, found through one registry.

An adapter (proxy.protocols.base.ProtocolAdapter) says everything the pipeline needs to know of
one wire protocol: the inbound paths it is served on, the provider URL and headers, its error
shape, and how its requests, answers, streams and errors convert to and from Anthropic Messages,
the pivot every conversion goes through. The catalog takes its list of valid `protocol:` values
from here. Adding a protocol is one adapter module registered below, one mock upstream and its
scenarios (docs/protocols.md walks through it).
"""

from __future__ import annotations

from proxy.protocols.anthropic import ANTHROPIC, AnthropicProtocol
from proxy.protocols.base import Conversion, ProtocolAdapter
from proxy.protocols.openai import OPENAI, OpenAIProtocol

REGISTRY: dict[str, ProtocolAdapter] = {
    ANTHROPIC: AnthropicProtocol(),
    OPENAI: OpenAIProtocol(),
}
NAMES: tuple[str, ...] = tuple(REGISTRY)
# the protocols other than the pivot claim their paths first (`/v1/messages` is Anthropic's)
_CLAIMS = tuple(
    (adapter.paths, adapter) for adapter in REGISTRY.values() if adapter.name != ANTHROPIC
)


def get(name: str) -> ProtocolAdapter:
    """The adapter for `name`; KeyError names the known ones."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown protocol {name!r} (known: {', '.join(NAMES)})") from None


def for_path(path: str) -> ProtocolAdapter:
    """The protocol a client speaks on `path` (Anthropic unless a protocol claims the path)."""
    for paths, adapter in _CLAIMS:
        if path.endswith(paths):
            return adapter
    return REGISTRY[ANTHROPIC]


def inbound_paths() -> tuple[str, ...]:
    """Every model path the front doors serve, for their routers."""
    return tuple(path for adapter in REGISTRY.values() for path in adapter.paths)


def conversion(client: str, provider: str) -> Conversion | None:
    """How a `client`-protocol request reaches a `provider`-protocol upstream and back; None when
    the two are the same protocol (a passthrough)."""
    if client == provider:
        return None
    pair = (client, provider)
    conv = _CONVERSIONS.get(pair)
    if conv is None:  # (a Conversion holds no state of a request: one per pair serves them all)
        conv = _CONVERSIONS[pair] = Conversion(get(client), get(provider))
    return conv


_CONVERSIONS: dict[tuple[str, str], Conversion] = {}


__all__ = [
    "ANTHROPIC",
    "NAMES",
    "OPENAI",
    "REGISTRY",
    "Conversion",
    "ProtocolAdapter",
    "conversion",
    "for_path",
    "get",
    "inbound_paths",
]
