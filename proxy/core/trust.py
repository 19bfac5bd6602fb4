"""Who may talk to the shim: the `Host`, `Origin` and admin content-type rules. Pure, no I/O.

Localhost is not a trust boundary for a browser: any page may send requests to 127.0.0.1, and a
DNS-rebinding page does it under a name of its own. So every request passes `Trust.refusal()`:

- `Host` must name the shim: a loopback name or address (localhost, 127.0.0.0/8, ::1) with any
  port, the address it is bound to, or a name of CCP_ALLOWED_HOSTS (`*`: any). Else 421. A
  request without `Host` (HTTP/1.0) is not a browser's and passes.
- `Origin`, when sent, must be one of CCP_ALLOWED_ORIGINS (`*`: any). Else 403. CLI and SDK
  clients send none; a browser always sends one with a cross-site POST.
- an admin write (a POST, PUT, PATCH or DELETE that is not a model call) takes a body only as
  `application/json`, and never one of the types a browser sends cross-site without asking
  (text/plain, urlencoded, multipart: a form), not even empty (`admin_write_refusal`): else 415.
  (An empty body under another type passes: aiohttp's client labels it octet-stream.)
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from proxy.core.errors import Forbidden, MisdirectedRequest, ShimError, UnsupportedMediaType

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "::1"})
WILDCARD_BINDS = frozenset({"", "0.0.0.0", "::", "*"})
ANY = "*"
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# what a cross-site form or a no-cors fetch may send without a CORS preflight
FORM_TYPES = frozenset({"text/plain", "application/x-www-form-urlencoded", "multipart/form-data"})
# a few dozen distinct Host values are remembered as allowed (the usual one or two, with ports)
_KNOWN_GOOD_MAX = 64
_SHOWN_MAX = 80  # how much of a refused value a message repeats


def host_name(value: str) -> str | None:
    """The host of a `Host` header (`name`, `name:port`, `[v6]:port`), lower-case, without a
    trailing dot; None when it is not one."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        if end < 0 or (value[end + 1 :] and not _is_port(value[end + 1 :])):
            return None
        return value[1:end]
    name, colon, port = value.rpartition(":")
    if not colon:
        name = value
    elif ":" in name or not port.isdigit():  # a bare IPv6 address, or a bad port
        return value if _is_ipv6(value) else None
    name = name.rstrip(".")
    return name or None


def _is_port(tail: str) -> bool:
    return tail[:1] == ":" and tail[1:].isdigit()


def _is_ipv6(value: str) -> bool:
    try:
        return ipaddress.ip_address(value).version == 6
    except ValueError:
        return False


def is_loopback(host: str) -> bool:
    """Whether `host` (a name or an address, as `--host` takes it) is a loopback one."""
    name = host_name(host) if host[:1] == "[" else host.strip().lower().rstrip(".")
    if name is None:
        return False
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _shown(value: str) -> str:
    return value if len(value) <= _SHOWN_MAX else value[:_SHOWN_MAX] + "…"


class Trust:
    """The allowed hosts and origins of one shim; `refusal()` runs on every request."""

    __slots__ = ("_hosts", "_any_host", "_origins", "_any_origin", "_known_good")

    def __init__(self, hosts: Iterable[str] = (), origins: Iterable[str] = ()) -> None:
        names = {h.strip().lower().rstrip(".") for h in hosts if h.strip()}
        self._any_host = ANY in names
        self._hosts = {host_name(n) or n for n in names - {ANY}}
        origins = {o.strip().lower().rstrip("/") for o in origins if o.strip()}
        self._any_origin = ANY in origins
        self._origins = frozenset(origins - {ANY})
        self._known_good: set[str] = set()  # Host values already found allowed, as sent

    def bind(self, host: str) -> None:
        """The address the shim listens on is a name it answers to (not a wildcard bind)."""
        name = host_name(host) if host[:1] == "[" else host.strip().lower().rstrip(".")
        if name and name not in WILDCARD_BINDS:
            self._hosts.add(name)

    def host_ok(self, value: str) -> bool:
        if self._any_host or value in self._known_good:
            return True
        name = host_name(value)
        ok = name is not None and (name in self._hosts or is_loopback(name))
        if ok and len(self._known_good) < _KNOWN_GOOD_MAX:
            self._known_good.add(value)
        return ok

    def origin_ok(self, value: str) -> bool:
        return self._any_origin or value.strip().lower().rstrip("/") in self._origins

    def refusal(self, headers) -> ShimError | None:
        """The error a request with these headers is answered with, or None when it may pass.
        (`headers`: any mapping with `.get`, names case-insensitive as aiohttp's are.)"""
        host = headers.get("host")
        if host is not None and not self.host_ok(host):
            return MisdirectedRequest(
                f"Host {_shown(host)!r} does not name this shim; allowed: the loopback names, "
                "its bound address and CCP_ALLOWED_HOSTS"
            )
        origin = headers.get("origin")
        if origin is not None and not self.origin_ok(origin):
            return Forbidden(
                f"cross-site request refused: Origin {_shown(origin)!r} is not in "
                "CCP_ALLOWED_ORIGINS"
            )
        return None


def admin_write_refusal(method: str, content_type: str | None, has_body: bool) -> ShimError | None:
    """An admin write's body is `application/json`; a form's type is refused even without a body."""
    if method not in WRITES:
        return None
    mime = "" if content_type is None else content_type.split(";", 1)[0].strip().lower()
    if mime == "application/json" or (not has_body and mime not in FORM_TYPES):
        return None
    got = "no content-type" if content_type is None else repr(_shown(content_type))
    return UnsupportedMediaType(f"admin endpoints take only application/json, got {got}")
