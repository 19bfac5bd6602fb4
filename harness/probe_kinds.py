"""Every way the harness asks a model through the shim, by name: raw HTTP, the official SDK, curl
and the real `claude` CLI (`probe(kind, …)`)."""
from __future__ import annotations

from harness.cli_probe import cli_probe, curl_probe
from harness.probes import ProbeResult, http_probe, sdk_probe

PROBES = {"http": http_probe, "sdk": sdk_probe, "curl": curl_probe, "cli": cli_probe}


def probe(kind: str, base_url: str, model: str, prompt: str = "Say hi", **kw) -> ProbeResult:
    """Run one probe of `kind` ("http", "sdk", "curl" or "cli")."""
    probes = PROBES
    try:
        fn = probes[kind]
    except KeyError:
        raise ValueError(f"unknown probe kind {kind!r}; expected one of {sorted(probes)}") from None
    return fn(base_url, model, prompt, **kw)
