"""The upstream seam's own pieces (proxy.upstream.base): the request tuple, the idle error and the
short error text. The clients behind the seam and the TLS trust (tls.py) have their own test files."""
import pytest

from proxy.core.errors import UpstreamTimeout
from proxy.upstream.base import StreamIdle, UpstreamRequest, describe

pytestmark = pytest.mark.quick


def test_a_request_knows_its_host_and_port():
    req = UpstreamRequest("POST", "https://api.z.ai:8443/api/anthropic/v1/messages", {}, b"", True)
    assert req.host == "api.z.ai:8443"
    assert UpstreamRequest("GET", "http://127.0.0.1/x?y=1", {}, b"", False).host == "127.0.0.1"
    assert req._replace(stream=False).host == req.host and req.stream is True  # a tuple: never changed


def test_an_idle_stream_is_a_timeout_of_its_own_kind():
    err = StreamIdle("no data")
    assert isinstance(err, UpstreamTimeout)
    assert err.err_type == "idle_timeout" != UpstreamTimeout("x").err_type


def test_describe_is_the_message_or_the_type_and_never_long():
    assert describe(ConnectionResetError("reset by peer")) == "reset by peer"
    assert describe(TimeoutError()) == "TimeoutError"
    long = describe(ValueError("x" * 500))
    assert long == "x" * 200 + "…"
    assert describe(ValueError("y" * 199)) == "y" * 199

