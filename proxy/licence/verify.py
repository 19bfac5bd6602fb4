"""Signed licences: canonical bytes, Ed25519 signing and pure verification.

A licence is a JSON object; a *pack* carries it with a detached signature::

    {"license": {"id": "lic-1", "plan": "trial", "features": ["zai_offload"],
                 "issued_at": 1767225600, "expires_at": 1768435200,
                 "kid": "ccp-2025", "subject": "ops@example.com"},
     "signature": "BASE64(Ed25519(canonical_bytes(license)))"}

Canonical bytes (the one definition; signer and verifier both call `canonical_bytes`):
    UTF-8 of ``json.dumps(license, sort_keys=True, separators=(",", ":"), ensure_ascii=False)``
    -- keys sorted at every depth, no whitespace, non-ASCII kept as UTF-8 (not ``\\u`` escapes).
    Times are whole Unix seconds (UTC) so no float formatting enters the bytes; floats are refused.
The signature is standard base64 (padding optional when reading) of the 64-byte Ed25519 signature.
Trusted keys are ``kid -> raw 32-byte Ed25519 public key``, written ``KID=BASE64`` (comma, semicolon
or whitespace separated) in ``CCP_LICENSE_PUBKEY_B64``, merged over `BUILTIN_KEYS`.

`verify(pack, trusted_keys, now)` is pure (no clock, no files) and returns a `LicenceState`; its
`reason` is one of `missing`, `malformed`, `unknown_kid`, `bad_signature`, `expired` (checked in
that order), or None for a valid licence. Whether a valid licence grants a feature is a separate
question: `allows(state, "zai_offload")`; `offload_reason()` names `no_zai_offload` for readiness.

`find_pack()` at the bottom is the one function here that reads files: it picks the first source
in the documented order (pack file, ``<config home>/license.pack``, ``CC_LICENSE_JSON`` +
``CC_LICENSE_SIG``), for Settings to verify once at start.
"""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:  # cryptography (~7 MB resident) is loaded by the functions that sign or verify:
    # a shim with no licence key configured never needs it
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

FEATURE_ZAI_OFFLOAD = "zai_offload"
PACK_FILE = "license.pack"  # <config home>/license.pack
# Issuer keys shipped with ccp (kid -> base64 raw public key). None yet: a release that runs a real
# issuer adds its key here; until then trust comes only from CCP_LICENSE_PUBKEY_B64.
BUILTIN_KEYS: Mapping[str, str] = {}
_REQUIRED = {
    "id": str,
    "plan": str,
    "features": list,
    "issued_at": int,
    "expires_at": int,
    "kid": str,
    "subject": str,
}


class LicenceState(NamedTuple):
    """The verdict on one licence (or on its absence); never holds a key or a signature."""

    ok: bool
    plan: str | None = None
    kid: str | None = None
    features: tuple[str, ...] = ()
    expires_at: int | None = None  # Unix seconds
    reason: str | None = "missing"  # None when ok
    id: str | None = None
    subject: str | None = None
    source: str | None = None  # where the pack came from (a path or an env name)
    detail: str = ""  # a human hint for malformed/missing (never secret material)

    @classmethod
    def missing(cls, detail: str = "") -> LicenceState:
        return cls(ok=False, reason="missing", detail=detail)


def allows(state: LicenceState, feature: str) -> bool:
    """True when `state` is a valid licence that grants `feature`."""
    return state.ok and feature in state.features


def offload_reason(state: LicenceState) -> str | None:
    """Why the licence does not allow Z.AI offload (missing, malformed, unknown_kid, bad_signature,
    expired or no_zai_offload), or None when it does."""
    if not state.ok:
        return state.reason
    return None if allows(state, FEATURE_ZAI_OFFLOAD) else "no_zai_offload"


# --- bytes and keys ----------------------------------------------------------------------------


def canonical_bytes(license: Mapping[str, Any]) -> bytes:
    """The bytes a licence signature covers (see the module docstring)."""
    _refuse_floats(license)
    return json.dumps(license, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def _refuse_floats(value: Any) -> None:
    if isinstance(value, float):
        raise ValueError("floats are not allowed in a licence (use whole seconds)")
    if isinstance(value, Mapping):
        for v in value.values():
            _refuse_floats(v)
    elif isinstance(value, list):
        for v in value:
            _refuse_floats(v)


def b64decode(text: str) -> bytes:
    """Standard base64 with or without padding; ValueError on anything else."""
    text = text.strip()
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not valid base64") from None


def b64encode(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def generate_seed() -> str:
    """A new private key as a base64 32-byte seed (for issuers and tests)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return b64encode(
        Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
    )


def private_key_from_seed(seed_b64: str) -> Ed25519PrivateKey:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    raw = b64decode(seed_b64)
    if len(raw) != 32:
        raise ValueError(f"an Ed25519 seed is 32 bytes, got {len(raw)}")
    return Ed25519PrivateKey.from_private_bytes(raw)


def public_key_b64(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """The base64 raw public key of a private or public key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    pub = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return b64encode(pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))


def public_key_from_b64(text: str) -> Ed25519PublicKey:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    raw = b64decode(text)
    if len(raw) != 32:
        raise ValueError(f"an Ed25519 public key is 32 bytes, got {len(raw)}")
    return Ed25519PublicKey.from_public_bytes(raw)


def parse_trusted_keys(
    spec: str, builtin: Mapping[str, str] = BUILTIN_KEYS
) -> dict[str, Ed25519PublicKey]:
    """``KID=BASE64[,KID=BASE64...]`` merged over `builtin`; ValueError names the bad entry's kid."""
    keys = {kid: public_key_from_b64(b64) for kid, b64 in builtin.items()}
    for entry in spec.replace(";", ",").replace("\n", ",").replace(" ", ",").split(","):
        entry = entry.strip()
        if not entry:
            continue
        kid, sep, b64 = entry.partition("=")
        if not sep or not kid.strip() or not b64.strip("= "):
            raise ValueError(f"entry {entry[:6]!r}...: expected KID=BASE64")
        try:
            keys[kid.strip()] = public_key_from_b64(b64)
        except ValueError as exc:
            raise ValueError(f"key {kid.strip()!r}: {exc}") from None
    return keys


def verify_detached(message: bytes, signature_b64: str, key: Ed25519PublicKey) -> bool:
    """True when `signature_b64` is `key`'s Ed25519 signature of `message` (policy packs use it)."""
    from cryptography.exceptions import InvalidSignature

    try:
        key.verify(b64decode(signature_b64), message)
        return True
    except (InvalidSignature, ValueError):
        return False


def sign_bytes(message: bytes, private_key: Ed25519PrivateKey) -> str:
    return b64encode(private_key.sign(message))


# --- licences ----------------------------------------------------------------------------------


def sign(license: Mapping[str, Any], private_key: Ed25519PrivateKey) -> str:
    """The detached base64 signature of a licence's canonical bytes."""
    return sign_bytes(canonical_bytes(license), private_key)


def make_pack(license: Mapping[str, Any], private_key: Ed25519PrivateKey) -> dict:
    return {"license": dict(license), "signature": sign(license, private_key)}


def parse_pack(text: str) -> dict:
    """A pack from its JSON text; ValueError when it is not ``{"license": {...}, "signature": str}``."""
    try:
        pack = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if (
        not isinstance(pack, dict)
        or not isinstance(pack.get("license"), dict)
        or not isinstance(pack.get("signature"), str)
    ):
        raise ValueError('expected {"license": {...}, "signature": "BASE64"}')
    return pack


def _shape_error(lic: Mapping[str, Any]) -> str | None:
    for key, kind in _REQUIRED.items():
        value = lic.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            return f"field {key!r} missing or not a {kind.__name__}"
    if not all(isinstance(f, str) for f in lic["features"]):
        return "features must be strings"
    return None


def verify(
    pack: Mapping[str, Any] | None,
    trusted_keys: Mapping[str, Ed25519PublicKey],
    now: float,
    source: str | None = None,
) -> LicenceState:
    """The verdict on `pack` at time `now` (Unix seconds); pure."""
    if pack is None:
        return LicenceState.missing()
    lic, sig = pack.get("license"), pack.get("signature")
    if not isinstance(lic, Mapping) or not isinstance(sig, str):
        return LicenceState(
            ok=False,
            reason="malformed",
            source=source,
            detail="expected license object and signature string",
        )
    shape = _shape_error(lic)
    if shape is not None:
        return LicenceState(ok=False, reason="malformed", source=source, detail=shape)
    seen = dict(
        plan=lic["plan"],
        kid=lic["kid"],
        features=tuple(lic["features"]),
        expires_at=lic["expires_at"],
        id=lic["id"],
        subject=lic["subject"],
        source=source,
    )
    key = trusted_keys.get(lic["kid"])
    if key is None:
        return LicenceState(ok=False, reason="unknown_kid", **seen)
    try:
        message = canonical_bytes(lic)
    except ValueError as exc:
        return LicenceState(ok=False, reason="malformed", source=source, detail=str(exc))
    if not verify_detached(message, sig, key):
        return LicenceState(ok=False, reason="bad_signature", **seen)
    if now >= lic["expires_at"]:
        return LicenceState(ok=False, reason="expired", **seen)
    return LicenceState(ok=True, reason=None, **seen)


def find_pack(
    pack_file: str | None, config_home: str, license_json: str | None, license_sig: str | None
) -> tuple[dict | None, str | None, str]:
    """(pack, source, problem) from the first source present, in the documented order.

    `pack_file` (``--license-pack`` / ``CC_LICENSE_PACK``) may be a path or inline pack JSON. A
    source that is present but unreadable or unparsable gives ``(None, source, problem)``.
    """
    if pack_file:
        if pack_file.lstrip().startswith("{"):
            return _parse(pack_file, "CC_LICENSE_PACK")
        return _read(Path(pack_file))
    if config_home:
        path = Path(config_home) / PACK_FILE
        if path.exists():
            return _read(path)
    if license_json or license_sig:
        if not (license_json and license_sig):
            return None, "CC_LICENSE_JSON", "CC_LICENSE_JSON and CC_LICENSE_SIG must both be set"
        source = "CC_LICENSE_JSON"
        if not license_json.lstrip().startswith("{"):  # a path, as the operators export it
            source = f"CC_LICENSE_JSON={license_json}"
            try:
                license_json = Path(license_json).expanduser().read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                return (
                    None,
                    source,
                    f"CC_LICENSE_JSON: neither JSON nor a readable file ({type(exc).__name__})",
                )
        if Path(license_sig.strip()).expanduser().is_file():  # the .sig file instead of its text
            license_sig = Path(license_sig.strip()).expanduser().read_text(encoding="utf-8")
        try:
            lic = json.loads(license_json)
        except ValueError:
            return None, source, "CC_LICENSE_JSON is not JSON"
        return {"license": lic, "signature": license_sig.strip()}, source, ""
    return None, None, ""


def _read(path: Path) -> tuple[dict | None, str | None, str]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return None, str(path), f"cannot read: {type(exc).__name__}"
    return _parse(text, str(path))


def _parse(text: str, source: str) -> tuple[dict | None, str | None, str]:
    try:
        return parse_pack(text), source, ""
    except ValueError as exc:
        return None, source, str(exc)


def load_state(
    pack_file: str | None,
    config_home: str,
    license_json: str | None,
    license_sig: str | None,
    trusted_keys: Mapping[str, Ed25519PublicKey],
    now: float,
) -> LicenceState:
    """find_pack() + verify(): the licence a starting shim runs with."""
    pack, source, problem = find_pack(pack_file, config_home, license_json, license_sig)
    if pack is None and source is not None:
        reason = "missing" if "cannot read" in problem else "malformed"
        return LicenceState(ok=False, reason=reason, source=source, detail=problem)
    return verify(pack, trusted_keys, now, source=source)


def iso(ts: int | None) -> str | None:
    """Unix seconds as ISO-8601 UTC (``2026-01-31T00:00:00Z``)."""
    if ts is None:
        return None
    return _dt.datetime.fromtimestamp(ts, _dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def log_line(state: LicenceState, enforced: bool) -> str:
    """The startup line: ``[license] plan=trial features=[zai_offload] ...`` or why it was rejected."""
    mode = "enforce=on" if enforced else "enforce=off"
    if state.ok:
        line = (
            f"[license] plan={state.plan} features=[{','.join(state.features)}] kid={state.kid} "
            f"expires_at={iso(state.expires_at)} {mode}"
        )
        if offload_reason(state):
            line += " (no zai_offload: haiku stays on anthropic)" if enforced else ""
        return line
    detail = f" ({state.detail})" if state.detail else ""
    where = f" source={state.source}" if state.source else ""
    effect = " (not enforced: full features)" if not enforced else " (haiku stays on anthropic)"
    return f"[license] rejected: {state.reason}{detail}{where} {mode}{effect}"


def readiness_view(state: LicenceState, enforced: bool) -> dict:
    """The `/readyz` ``license`` object. `ok`: licensing blocks nothing (always so when not enforced)."""
    blocked = offload_reason(state)
    return {
        "ok": not enforced or blocked is None,
        "enforced": enforced,
        "valid": state.ok,
        "plan": state.plan,
        "kid": state.kid,
        "features": list(state.features),
        "expires_at": iso(state.expires_at),
        "reason": blocked,
        "source": state.source,
    }
