"""Header hygiene: which headers cross the shim, per lane, in both directions.

Pure functions over plain (name, value) pairs; no I/O. The rules (DESIGN.md, "Header hygiene"):
- anthropic lane: the client's own `authorization` / `x-api-key` pass; when the client sent neither, the
  shim's `ANTHROPIC_AUTH_TOKEN` (as Bearer) or `ANTHROPIC_API_KEY` is used. A Z.AI key or a session
  token never goes out on it.
- zai lane (and any catalog provider): the client's `authorization` and `x-api-key` are dropped; the
  provider's own key (`$ZAI_API_KEY` for zai) is set as `x-api-key` or as `authorization: Bearer` by
  its header mode (`ZAI_HEADER_MODE`). No Anthropic credential goes out.
- an OpenAI-protocol provider gets a fresh header set (`openai_request_headers`): nothing of the
  client's Anthropic headers, its own key only.
- both: hop-by-hop headers are dropped; `host` and `content-length` are recomputed by the client.
- the shim's own headers (`x-ccp-*`: the admin token, the actor, …) never go upstream, and a
  client credential equal to one of `session_tokens` (the caller passes the admin token among
  them) is never used as a lane credential.
- an Anthropic-protocol provider with a profile gets only the `anthropic-beta` flags the profile
  lets through (`provider_profiles.filter_betas`), and no such header when none is left.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from proxy.core.provider_profiles import ProviderProfile, filter_betas
from proxy.core.routing import LANE_ANTHROPIC

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
CREDENTIAL_HEADERS = frozenset({"authorization", "x-api-key"})
OWN_PREFIX = "x-ccp-"  # the shim's own headers (admin token, actor, …): never forwarded
# the shim forwards the body as it read it: aiohttp has already decoded any content-encoding
_RECOMPUTED = frozenset({"host", "content-length", "content-encoding"})
_REQUEST_DROP = HOP_BY_HOP | _RECOMPUTED
# What the shim asks every upstream for, whatever the client accepts: the plain bytes. The shim
# reads every answer (tokens, the SSE meter, partials, trajectories), which a compressed body would
# hide; between the shim and a client on the same machine compression saves nothing, and decoding
# it only to meter it, then encoding it again, would cost CPU per byte. (An upstream that
# compresses anyway is decoded by the relay: proxy.pipeline.relay.)
ACCEPT_ENCODING = ("accept-encoding", "identity")
# The response's own framing and identity come from the shim's server, not from the upstream's.
_RESPONSE_DROP = HOP_BY_HOP | frozenset({"content-length", "date", "server"})


class LaneCredentials(NamedTuple):
    """The credentials the shim holds, as plain strings ("" when unset)."""

    zai_api_key: str = ""
    anthropic_auth_token: str = ""
    anthropic_api_key: str = ""
    zai_header_mode: str = "x-api-key"


def _connection_listed(headers: Iterable[tuple[str, str]]) -> set[str]:
    listed: set[str] = set()
    for name, value in headers:
        if name.lower() == "connection":
            listed.update(t.strip().lower() for t in value.split(",") if t.strip())
    return listed


def bearer_token(value: str) -> str | None:
    """What follows `Bearer` and any whitespace after it (spaces, tabs, several), stripped; None
    when the value is not of the Bearer scheme."""
    value = value.strip()
    if value[:6].lower() == "bearer" and value[6:7].isspace():
        return value[6:].strip()
    return None


def bearer_value(value: str) -> str:
    """The credential an `authorization` value carries: its Bearer token, else the whole value."""
    token = bearer_token(value)
    return value.strip() if token is None else token


def upstream_request_headers(
    lane: str,
    client_headers: Iterable[tuple[str, str]],
    creds: LaneCredentials,
    session_tokens: frozenset[str] = frozenset(),
    profile: ProviderProfile | None = None,
) -> dict[str, str]:
    """Headers to send upstream for `lane`, given what the client sent.

    Returns a dict keyed by lower-case names. `session_tokens` are inbound tokens that identify a
    sandbox session: they are accepted from the client but never forwarded. `profile` (the
    provider's) filters the `anthropic-beta` flags.
    """
    out: dict[str, str] = {}
    listed: set[str] = set()  # what `connection` names is hop-by-hop too
    for name, value in client_headers:
        key = name.lower()
        if key == "connection":
            listed.update(t.strip().lower() for t in value.split(",") if t.strip())
        elif key[:6] == OWN_PREFIX:
            continue
        out[key] = value  # a repeated header: its last value, as before
    for key in (_REQUEST_DROP | listed) & out.keys():
        del out[key]
    out[ACCEPT_ENCODING[0]] = ACCEPT_ENCODING[1]
    if profile is not None and "anthropic-beta" in out:
        betas = filter_betas(profile, out["anthropic-beta"])
        if betas is None:
            del out["anthropic-beta"]
        else:
            out["anthropic-beta"] = betas

    if lane != LANE_ANTHROPIC:
        for key in CREDENTIAL_HEADERS:
            out.pop(key, None)
        if creds.zai_api_key:
            if creds.zai_header_mode == "authorization":
                out["authorization"] = f"Bearer {creds.zai_api_key}"
            else:
                out["x-api-key"] = creds.zai_api_key
        return out

    # Any other lane speaks to Anthropic: keep the client's own credential unless it is a foreign one.
    foreign = {t for t in (creds.zai_api_key, *session_tokens) if t}
    for key in CREDENTIAL_HEADERS:
        if key in out and bearer_value(out[key]) in foreign:
            del out[key]
    if not CREDENTIAL_HEADERS & out.keys():
        if creds.anthropic_auth_token:
            out["authorization"] = f"Bearer {creds.anthropic_auth_token}"
        elif creds.anthropic_api_key:
            out["x-api-key"] = creds.anthropic_api_key
    return out


def openai_request_headers(api_key: str, header_mode: str = "authorization") -> dict[str, str]:
    """Headers for an OpenAI Chat Completions provider: JSON, and the provider's own key."""
    out = {
        "content-type": "application/json",
        "accept": "application/json, text/event-stream",
        ACCEPT_ENCODING[0]: ACCEPT_ENCODING[1],
    }
    if api_key:
        if header_mode == "x-api-key":
            out["x-api-key"] = api_key
        else:
            out["authorization"] = f"Bearer {api_key}"
    return out


def client_response_headers(upstream_headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Upstream response headers worth relaying to the client (order and repeats kept)."""
    pairs = list(upstream_headers)
    drop = _RESPONSE_DROP | _connection_listed(pairs)
    return [(name, value) for name, value in pairs if name.lower() not in drop]
