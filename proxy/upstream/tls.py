"""The TLS trust for upstream connections: one for every client and for the readiness probe.

`trust(settings)` is certifi's roots plus the PEM certificates `CCP_CA_BUNDLE` / `SSL_CERT_FILE`
names, added to them, never replacing them (so a bundle for a test CA or a corporate proxy does not
take the public providers away). `ca_files(settings)` names those files in that order (what a client
that takes a file rather than a context, such as mitmproxy's, is to trust).

A context is made once per bundle path and protocol offer, and shared: loading certifi's roots is
the costly part. It offers `http/1.1` by ALPN, or `h2` too (`http2=True`, the httpx client's, whose
httpcore sets that same offer on the context it is given); a context is never shared between the
two offers, so an HTTP/1.1-only client is never offered h2. A bundle that is missing or holds no
certificate raises (OSError, ssl.SSLError) when the first client starts.
"""

from __future__ import annotations

import ssl
from functools import lru_cache

import certifi

from proxy.config.settings import Settings


def ca_files(settings: Settings) -> tuple[str, ...]:
    """The PEM files upstream TLS trusts, in order: certifi's roots, then the bundle if one is set."""
    return (certifi.where(), settings.ca_bundle) if settings.ca_bundle else (certifi.where(),)


def trust(settings: Settings, *, http2: bool = False) -> ssl.SSLContext:
    """The verifying client context for upstreams (shared: cached per bundle path and offer)."""
    return _context(ca_files(settings), http2)


@lru_cache(maxsize=16)
def _context(files: tuple[str, ...], http2: bool) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=files[0])
    for extra in files[1:]:
        context.load_verify_locations(cafile=extra)
    context.set_alpn_protocols(["http/1.1", "h2"] if http2 else ["http/1.1"])
    return context
