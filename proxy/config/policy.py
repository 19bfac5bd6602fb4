"""Signed policy packs: routing defaults fetched at start, verified, cached, with an embedded fallback.

A pack is two files served side by side: ``policy.json`` and ``policy.json.sig``, the base64 Ed25519
signature of the exact bytes of ``policy.json`` as served (no canonicalisation: the file is signed
as is). The public key is a file holding the base64 raw 32-byte key (``CCP_POLICY_PUBKEY`` /
``--policy-pubkey``). ``policy.json``::

    {"version": 1, "id": "2026-01-default",
     "routing": {"force_haiku_to_zai": true, "offload_paused": false, "zai_header_mode": "x-api-key"}}

`resolve()` picks one outcome, each logged as one line by the caller:
  remote    fetched, signature and content valid → applied, written to ``<logs>/policy-cache.json``
  cache     the fetch failed (network, timeout, HTTP status) → the cached copy (re-verified)
  embedded  a bad signature or malformed content, or a failed fetch with no usable cache →
            `EMBEDDED_POLICY` (Haiku → Z.AI, Sonnet/Opus → Anthropic)
`apply()` sets only the toggles the environment did not set itself: an operator's explicit
``OFFLOAD_PAUSED=1`` outranks any remote default.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:  # loaded by proxy.licence.verify when a key is read (a configured pack)
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from proxy.config.settings import HEADER_MODES, Settings
from proxy.core.parse import ConfigError
from proxy.licence.verify import public_key_from_b64, verify_detached

FETCH_TIMEOUT = 5.0
CACHE_FILE = "policy-cache.json"


class RoutingDefaults(NamedTuple):
    """What a policy may set; None leaves the setting as it is."""

    force_haiku_to_zai: bool | None = None
    offload_paused: bool | None = None
    zai_header_mode: str | None = None
    id: str = "embedded"


EMBEDDED_POLICY = RoutingDefaults(force_haiku_to_zai=True, offload_paused=False, id="embedded")


class PolicyOutcome(NamedTuple):
    defaults: RoutingDefaults
    source: str  # remote | cache | embedded
    message: str  # the one log line


class FetchError(Exception):
    """The pack could not be fetched (network, timeout or an HTTP error status)."""


Fetcher = Callable[[str], "tuple[bytes, str]"]


def pack_urls(url: str) -> tuple[str, str]:
    """(policy.json URL, signature URL): `url` is the json file itself or the folder serving it."""
    json_url = url if url.endswith(".json") else url.rstrip("/") + "/policy.json"
    return json_url, json_url + ".sig"


def parse_policy(raw: bytes) -> RoutingDefaults:
    """The routing defaults of a policy.json; ValueError naming the bad key."""
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"policy.json is not UTF-8 JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("routing"), dict):
        raise ValueError('policy.json: expected {"routing": {...}}')
    routing = doc["routing"]
    kw: dict = {"id": str(doc.get("id") or "unnamed")}
    for key in ("force_haiku_to_zai", "offload_paused"):
        if key in routing:
            if not isinstance(routing[key], bool):
                raise ValueError(f"routing.{key}={routing[key]!r}: expected true or false")
            kw[key] = routing[key]
    if "zai_header_mode" in routing:
        if routing["zai_header_mode"] not in HEADER_MODES:
            raise ValueError(
                f"routing.zai_header_mode={routing['zai_header_mode']!r}: "
                f"expected one of {', '.join(HEADER_MODES)}"
            )
        kw["zai_header_mode"] = routing["zai_header_mode"]
    return RoutingDefaults(**kw)


def load_pubkey(path: str) -> Ed25519PublicKey:
    """The policy public key from a file holding its base64 raw bytes."""
    try:
        return public_key_from_b64(Path(path).read_text(encoding="ascii").strip())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"CCP_POLICY_PUBKEY={path!r}: {exc}") from None


def fetch(url: str, timeout: float = FETCH_TIMEOUT) -> tuple[bytes, str]:
    """(policy.json bytes, signature text) from `url`; FetchError on any failure."""
    import httpx  # only a configured pack is fetched: a shim without one never loads httpx here

    json_url, sig_url = pack_urls(url)
    try:
        with httpx.Client(timeout=timeout, trust_env=False, follow_redirects=False) as client:
            body, sig = client.get(json_url), client.get(sig_url)
    except httpx.HTTPError as exc:
        raise FetchError(f"{type(exc).__name__}") from None
    for resp in (body, sig):
        if resp.status_code != 200:
            raise FetchError(f"HTTP {resp.status_code} for {resp.url}")
    return body.content, sig.text.strip()


def _verified(raw: bytes, sig: str, key: Ed25519PublicKey) -> RoutingDefaults | str:
    """The defaults, or why not (``bad signature`` / the parse error)."""
    if not verify_detached(raw, sig, key):
        return "bad signature"
    try:
        return parse_policy(raw)
    except ValueError as exc:
        return f"malformed: {exc}"


def _read_cache(path: Path, key: Ed25519PublicKey) -> tuple[RoutingDefaults | None, str]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        raw, sig = doc["policy"].encode("utf-8"), doc["signature"]
    except FileNotFoundError:
        return None, "no cache"
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None, f"unreadable cache {path}"
    verdict = _verified(raw, sig, key)
    if isinstance(verdict, str):
        return None, f"cache {path} rejected ({verdict})"
    return verdict, f"cached copy from {doc.get('fetched_at', '?')}"


def _write_cache(path: Path, url: str, raw: bytes, sig: str, now: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(
        json.dumps(
            {
                "url": url,
                "fetched_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
                "policy": raw.decode("utf-8"),
                "signature": sig,
            }
        ),
        encoding="utf-8",
    )
    tmp.replace(path)  # atomic: a crashed start never leaves half a cache


def resolve(
    url: str, key: Ed25519PublicKey, cache_path: Path, now: float, fetcher: Fetcher = fetch
) -> PolicyOutcome:
    """Fetch → verify → cache, or the cache, or the embedded default (see the module docstring)."""
    try:
        raw, sig = fetcher(url)
    except FetchError as exc:
        cached, why = _read_cache(cache_path, key)
        if cached is not None:
            return PolicyOutcome(
                cached, "cache", f"[policy] fetch failed ({exc}): using {why} id={cached.id}"
            )
        return PolicyOutcome(
            EMBEDDED_POLICY,
            "embedded",
            f"[policy] fetch failed ({exc}) and {why}: using the embedded default",
        )
    verdict = _verified(raw, sig, key)
    if isinstance(verdict, str):
        return PolicyOutcome(
            EMBEDDED_POLICY, "embedded", f"[policy] {url}: {verdict}: using the embedded default"
        )
    try:
        _write_cache(cache_path, url, raw, sig, now)
        note = ""
    except OSError as exc:
        note = f" (not cached: {type(exc).__name__})"
    return PolicyOutcome(verdict, "remote", f"[policy] applied id={verdict.id} from {url}{note}")


def apply(settings: Settings, defaults: RoutingDefaults) -> Settings:
    """`settings` with the policy's defaults for every toggle the environment left unset."""
    changes = {
        k: v
        for k, v in defaults._asdict().items()
        if k != "id" and v is not None and k not in settings.routing_from_env
    }
    return dataclasses.replace(settings, **changes)


def load_for(
    settings: Settings, now: float, fetcher: Fetcher = fetch
) -> tuple[Settings, PolicyOutcome | None]:
    """The settings a starting shim runs with, and the outcome (None: no policy configured)."""
    if not settings.policy_url:
        return settings, None
    if not settings.policy_pubkey:
        raise ConfigError(
            f"CCP_POLICY_URL={settings.policy_url!r}: needs CCP_POLICY_PUBKEY (or --policy-pubkey)"
        )
    key = load_pubkey(settings.policy_pubkey)
    outcome = resolve(settings.policy_url, key, Path(settings.logs_dir) / CACHE_FILE, now, fetcher)
    kept = sorted(
        k
        for k, v in outcome.defaults._asdict().items()
        if k != "id" and v is not None and k in settings.routing_from_env
    )
    if kept:
        outcome = outcome._replace(message=f"{outcome.message} (env keeps {','.join(kept)})")
    return apply(settings, outcome.defaults), outcome
