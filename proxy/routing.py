"""The routing decision: which lane serves a request.

`decide()` is pure: it reads a `RequestMeta` and a `RoutingPolicy` and returns a `Decision`. It does no
I/O and imports neither aiohttp nor `os`; the handler is its only caller that touches the network.

Rows of the DESIGN table implemented here (first match wins):
  1. offload paused                        -> anthropic, ``offload_paused``
  4. a haiku model and force-haiku-to-zai  -> zai,       ``to_zai``
  5. anything else                         -> anthropic, ``to_anth``
"""
from __future__ import annotations

import re
from typing import NamedTuple

LANE_ANTHROPIC = "anthropic"
LANE_ZAI = "zai"

# Claude Code sends ids such as "claude-haiku-4-5-20251001", "claude-3-5-haiku-latest" or
# "claude-haiku-5-5"; new ids appear with every release, so families are matched by pattern.
_FAMILY_RE = re.compile(r"(?<![a-z])(haiku|sonnet|opus)(?![a-z])", re.IGNORECASE)


def model_family(model: str | None) -> str | None:
    """Return ``haiku``, ``sonnet`` or ``opus`` for a Claude model id, else None."""
    if not model:
        return None
    m = _FAMILY_RE.search(model)
    return m.group(1).lower() if m else None


def is_haiku(model: str | None) -> bool:
    return model_family(model) == "haiku"


class RequestMeta(NamedTuple):
    """What routing may look at: the model asked for and the inbound protocol."""

    model: str
    protocol: str = "anthropic"


class RoutingPolicy(NamedTuple):
    """The routing toggles, already parsed (see proxy.settings)."""

    offload_paused: bool = False
    force_haiku_to_zai: bool = True


class Decision(NamedTuple):
    lane: str
    provider: str
    upstream_model: str
    reason: str  # the usage record's ``decision`` field


def decide(meta: RequestMeta, policy: RoutingPolicy) -> Decision:
    """Pick the lane for one request; first matching row of the routing table wins."""
    if policy.offload_paused:
        return Decision(LANE_ANTHROPIC, LANE_ANTHROPIC, meta.model, "offload_paused")
    if policy.force_haiku_to_zai and is_haiku(meta.model):
        return Decision(LANE_ZAI, LANE_ZAI, meta.model, "to_zai")
    return Decision(LANE_ANTHROPIC, LANE_ANTHROPIC, meta.model, "to_anth")
