"""Header hygiene checked on what the upstream mocks actually received.

Pure functions over the headers of recorded calls: the shim's own unit tests prove what it means to
send; these prove what arrived. A lane's credential on the other lane's mock is a failure, whatever the
shim believed it sent; so is a sandbox session token in any header of any call (the session token is
the sandbox's credential towards the shim only), and so is a Z.AI key on the anthropic lane in any
header or spelling (as `x-api-key`, or as a bearer).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from harness.gates import GateResult


def _credential_values(headers: Mapping[str, str]) -> str:
    return " ".join(v for k, v in headers.items() if k.lower() in ("authorization", "x-api-key"))


def _anywhere(headers: Mapping[str, str], secrets: Iterable[str]) -> list[str]:
    """The (shortened) secrets found in any header value."""
    values = " ".join(headers.values())
    return [s[:10] + "…" for s in secrets if s and s in values]


def check_zai_calls(calls: Iterable[Mapping[str, str]], zai_key: str,
                    anthropic_secrets: Iterable[str], header_mode: str | Sequence[str] = "x-api-key",
                    session_tokens: Iterable[str] = ()) -> GateResult:
    """Every call on the zai mock carries the Z.AI key in the chosen header and no Anthropic secret
    or session token. `header_mode` is one mode, or one per call (calls made under different
    ZAI_HEADER_MODE settings)."""
    secrets = [s for s in anthropic_secrets if s]
    tokens = [t for t in session_tokens if t]
    bad: list[str] = []
    n = 0
    modes: set[str] = set()
    for i, headers in enumerate(calls):
        n += 1
        mode = header_mode if isinstance(header_mode, str) else header_mode[i]
        modes.add(mode)
        leaked = _anywhere(headers, secrets)
        if leaked:
            bad.append(f"call {i}: anthropic credential {leaked}")
        if _anywhere(headers, tokens):
            bad.append(f"call {i}: carries a session token")
        if mode == "authorization":
            if headers.get("authorization") != f"Bearer {zai_key}" or "x-api-key" in headers:
                bad.append(f"call {i}: expected only authorization: Bearer <ZAI_API_KEY>")
        elif headers.get("x-api-key") != zai_key or "authorization" in headers:
            bad.append(f"call {i}: expected only x-api-key: <ZAI_API_KEY>")
    ok = not bad
    shown = " or ".join(sorted(modes)) or (header_mode if isinstance(header_mode, str) else "-")
    return GateResult("zai_mock_hygiene", ok,
                      f"{n} call(s), Z.AI key only via {shown}, no Anthropic credential or session "
                      f"token" if ok else "; ".join(bad[:3]))


def check_anthropic_calls(calls: Iterable[Mapping[str, str]], zai_key: str,
                          session_tokens: Iterable[str] = (),
                          allowed: Iterable[str] | None = None) -> GateResult:
    """No call on the anthropic mock carries the Z.AI key or a session token in any header; each
    has a credential, and (given `allowed`) every credential it carries is one of those."""
    foreign = [t for t in (zai_key, *session_tokens) if t]
    allowed = None if allowed is None else {a for a in allowed if a}
    bad: list[str] = []
    n = 0
    for i, headers in enumerate(calls):
        n += 1
        creds = _credential_values(headers)
        if _anywhere(headers, foreign):
            bad.append(f"call {i}: carries a Z.AI key or session token")
        if not creds:
            bad.append(f"call {i}: no credential at all")
        elif allowed is not None:
            values = [headers[k].removeprefix("Bearer ") for k in headers
                      if k.lower() in ("authorization", "x-api-key")]
            if any(v not in allowed for v in values):
                bad.append(f"call {i}: a credential that is no anthropic-side one")
    ok = not bad
    return GateResult("anthropic_mock_hygiene", ok,
                      f"{n} call(s), no Z.AI key or session token" if ok else "; ".join(bad[:3]))
