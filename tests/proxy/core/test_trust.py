"""proxy.core.trust: which Host and Origin values may talk to the shim; admin writes take JSON."""
from __future__ import annotations

import pytest

from proxy.core.errors import Forbidden, MisdirectedRequest, UnsupportedMediaType
from proxy.core.trust import Trust, admin_write_refusal, host_name, is_loopback

pytestmark = pytest.mark.quick


@pytest.mark.parametrize("value, name", [
    ("localhost", "localhost"), ("LOCALHOST:18080", "localhost"), ("localhost.", "localhost"),
    ("127.0.0.1:80", "127.0.0.1"), ("[::1]:18080", "::1"), ("[::1]", "::1"), ("::1", "::1"),
    ("example.com:443", "example.com"),
    ("evil.com:x", None), ("[::1", None), ("[::1]x", None), (":80", None), ("", None),
])
def test_host_name(value, name):
    assert host_name(value) == name


@pytest.mark.parametrize("host, loop", [
    ("127.0.0.1", True), ("127.1.2.3", True), ("::1", True), ("[::1]", True),
    ("localhost", True), ("0.0.0.0", False), ("10.0.0.2", False), ("::", False),
    ("box.lan", False),
])
def test_is_loopback(host, loop):
    assert is_loopback(host) is loop


def test_loopback_hosts_pass_with_any_port_and_others_are_421():
    trust = Trust()
    for ok in ("localhost:1", "127.0.0.1:18080", "[::1]:9", "127.0.0.1"):
        assert trust.refusal({"host": ok}) is None, ok
    for bad in ("evil.example", "evil.example:18080", "127.0.0.1.evil.example",
                "localhost.evil.example", "10.0.0.2:18080", "0.0.0.0:18080", "[::1]x"):
        assert isinstance(trust.refusal({"host": bad}), MisdirectedRequest), bad
    assert trust.refusal({}) is None  # no Host (HTTP/1.0): not a browser's request


def test_the_bound_address_and_the_allowlist_are_hosts_too():
    trust = Trust(hosts=["Box.LAN", "10.0.0.9:80"])
    trust.bind("10.0.0.2")
    trust.bind("0.0.0.0")  # a wildcard names no host
    for ok in ("box.lan", "box.lan:18080", "10.0.0.2:18080", "10.0.0.9"):
        assert trust.refusal({"host": ok}) is None, ok
    assert trust.refusal({"host": "0.0.0.0:18080"}) is not None
    assert Trust(hosts=["*"]).refusal({"host": "anything.example"}) is None


def test_the_remembered_good_hosts_stay_bounded():
    trust = Trust()
    for port in range(500):
        assert trust.host_ok(f"127.0.0.1:{port}")
    assert len(trust._known_good) <= 64


def test_an_origin_is_403_unless_allowed():
    trust = Trust(origins=["http://localhost:3000/"])
    assert trust.refusal({"host": "localhost"}) is None  # CLI and SDK clients send none
    assert trust.refusal({"origin": "http://LOCALHOST:3000"}) is None
    for bad in ("https://evil.example", "null", "http://localhost:3001", ""):
        refused = trust.refusal({"origin": bad})
        assert isinstance(refused, Forbidden) and refused.status == 403, bad
    assert Trust(origins=["*"]).refusal({"origin": "https://x.example"}) is None


def test_a_refused_value_is_quoted_short():
    refused = Trust().refusal({"host": "x" * 10_000})
    assert refused is not None and len(refused.message) < 300


@pytest.mark.parametrize("method, ctype, body, ok", [
    ("POST", "application/json", True, True),
    ("POST", "Application/JSON; charset=utf-8", True, True),
    ("POST", None, False, True),
    ("POST", "application/octet-stream", False, True),  # aiohttp's label for an empty body
    ("DELETE", None, False, True),
    ("GET", "text/plain", True, True),  # not a write
    ("POST", "text/plain", True, False),
    ("POST", "text/plain", False, False),  # a form, even empty
    ("POST", "application/x-www-form-urlencoded", False, False),
    ("POST", "multipart/form-data; boundary=x", True, False),
    ("POST", None, True, False),
    ("PUT", "application/octet-stream", True, False),
])
def test_admin_writes_take_json(method, ctype, body, ok):
    refused = admin_write_refusal(method, ctype, body)
    if ok:
        assert refused is None
    else:
        assert isinstance(refused, UnsupportedMediaType) and refused.status == 415
