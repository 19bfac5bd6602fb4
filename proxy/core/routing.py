"""The routing decision: which lane serves a request.

`decide()` is pure: it reads a `RequestMeta`, a `RoutingPolicy` and optionally the provider catalog
and the manual override, and returns a `Decision`. It does no I/O and imports neither aiohttp nor `os`;
the handler is its only caller that touches the network.

Rows of the DESIGN table implemented here (first match wins):
  1. offload paused                        -> anthropic,               ``offload_paused``
  2. a manual override (CCP_MODEL / file)  -> the override's route, or
                                              anthropic with that model, ``manual_override``
  3. a catalog route matches the model     -> the route's provider,    ``route``
  4. a haiku model and force-haiku-to-zai  -> zai,                     ``to_zai``
 4a.   …but licence enforcement is on and the licence does not grant ``zai_offload``
                                           -> anthropic,               ``license_block``
  5. anything else                         -> anthropic,               ``to_anth``
A route's lane is its provider's name; its upstream model is the route's ``model``, else the name asked.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:  # only for annotations: the catalog module imports settings, which imports this
    from proxy.config.catalog import Catalog, Route

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
    """The routing toggles, already parsed (see proxy.config.settings)."""

    offload_paused: bool = False
    force_haiku_to_zai: bool = True
    licence_enforced: bool = False  # CCP_LICENSE_ENFORCE
    licence_allows_offload: bool = (
        True  # a valid licence grants zai_offload (see proxy.licence.verify)
    )


class Decision(NamedTuple):
    lane: str
    provider: str
    upstream_model: str
    reason: str  # the usage record's ``decision`` field
    protocol: str = "anthropic"  # the provider's protocol (openai needs a conversion)


def _via(route: Route, model: str, reason: str, catalog: Catalog) -> Decision:
    provider = catalog.provider(route.provider)
    return Decision(
        route.provider,
        route.provider,
        route.upstream_model or model,
        reason,
        provider.protocol if provider is not None else "anthropic",
    )


def decide(
    meta: RequestMeta,
    policy: RoutingPolicy,
    catalog: Catalog | None = None,
    override: str | None = None,
) -> Decision:
    """Pick the lane for one request; first matching row of the routing table wins.

    `override` is a route name (served like that route) or a plain model id (sent to the anthropic
    lane as that model).
    """
    if policy.offload_paused:
        return Decision(LANE_ANTHROPIC, LANE_ANTHROPIC, meta.model, "offload_paused")
    if override:
        if catalog is not None and (route := catalog.match(override)) is not None:
            return _via(route, override, "manual_override", catalog)
        return Decision(LANE_ANTHROPIC, LANE_ANTHROPIC, override, "manual_override")
    if catalog is not None and (route := catalog.match(meta.model)) is not None:
        return _via(route, meta.model, "route", catalog)
    if policy.force_haiku_to_zai and is_haiku(meta.model):
        if policy.licence_enforced and not policy.licence_allows_offload:
            return Decision(LANE_ANTHROPIC, LANE_ANTHROPIC, meta.model, "license_block")
        return Decision(LANE_ZAI, LANE_ZAI, meta.model, "to_zai")
    return Decision(LANE_ANTHROPIC, LANE_ANTHROPIC, meta.model, "to_anth")
