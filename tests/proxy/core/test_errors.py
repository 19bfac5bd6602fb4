import json

import pytest

from proxy.core.errors import (
    BadRequest,
    NotFound,
    PayloadTooLarge,
    UpstreamError,
    UpstreamTimeout,
)
from proxy.protocols import get as protocol

pytestmark = pytest.mark.quick


def test_anthropic_error_shape():
    assert json.loads(protocol("anthropic").error_body("invalid_request_error", "bad")) == {
        "type": "error", "error": {"type": "invalid_request_error", "message": "bad"}}


def test_openai_error_shape():
    assert json.loads(protocol("openai").error_body("invalid_request_error", "bad"))["error"]["message"] == "bad"


@pytest.mark.parametrize("cls, status, err_type", [
    (BadRequest, 400, "bad_request"), (NotFound, 404, "bad_request"),
    (PayloadTooLarge, 413, "bad_request"), (UpstreamError, 502, "net"),
    (UpstreamTimeout, 504, "timeout")])
def test_error_tree(cls, status, err_type):
    exc = cls("m", rid="r", lane="zai")
    assert (exc.status, exc.err_type, exc.rid, exc.lane) == (status, err_type, "r", "zai")
