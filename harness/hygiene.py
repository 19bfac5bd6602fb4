"""Header hygiene checked on what the upstream mocks actually received.

Pure functions over the headers of recorded calls: the shim's own unit tests prove what it means to
send; these prove what arrived. A lane's credential on the other lane's mock is a failure, whatever the
shim believed it sent.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping

from harness.gates import GateResult


def _credential_values(headers: Mapping[str, str]) -> str:
    return " ".join(v for k, v in headers.items() if k.lower() in ("authorization", "x-api-key"))


def check_zai_calls(calls: Iterable[Mapping[str, str]], zai_key: str,
                    anthropic_secrets: Iterable[str], header_mode: str = "x-api-key") -> GateResult:
    """Every call on the zai mock carries the Z.AI key in the chosen header and no Anthropic secret."""
    secrets = [s for s in anthropic_secrets if s]
    bad: list[str] = []
    n = 0
    for i, headers in enumerate(calls):
        n += 1
        creds = _credential_values(headers)
        leaked = [s[:10] + "…" for s in secrets if s in creds]
        if leaked:
            bad.append(f"call {i}: anthropic credential {leaked}")
        if header_mode == "authorization":
            if headers.get("authorization") != f"Bearer {zai_key}" or "x-api-key" in headers:
                bad.append(f"call {i}: expected only authorization: Bearer <ZAI_API_KEY>")
        elif headers.get("x-api-key") != zai_key or "authorization" in headers:
            bad.append(f"call {i}: expected only x-api-key: <ZAI_API_KEY>")
    ok = not bad
    return GateResult("zai_mock_hygiene", ok,
                         f"{n} call(s), Z.AI key only via {header_mode}" if ok else "; ".join(bad[:3]))


def check_anthropic_calls(calls: Iterable[Mapping[str, str]], zai_key: str,
                          session_tokens: Iterable[str] = ()) -> GateResult:
    """No call on the anthropic mock carries the Z.AI key or a session token; each has a credential."""
    foreign = [t for t in (zai_key, *session_tokens) if t]
    bad: list[str] = []
    n = 0
    for i, headers in enumerate(calls):
        n += 1
        creds = _credential_values(headers)
        if any(t in creds for t in foreign):
            bad.append(f"call {i}: carries a Z.AI key or session token")
        if not creds:
            bad.append(f"call {i}: no credential at all")
    ok = not bad
    return GateResult("anthropic_mock_hygiene", ok,
                         f"{n} call(s), no Z.AI key or session token" if ok else "; ".join(bad[:3]))
