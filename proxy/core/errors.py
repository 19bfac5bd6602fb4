"""The shim's own errors and their wire shapes.

    ShimError                    status  error.type             err_type
    ├── BadRequest                 400   invalid_request_error  bad_request
    │   ├── Unauthorized           401   authentication_error   bad_request
    │   ├── Forbidden              403   permission_error       bad_request
    │   ├── NotFound               404   not_found_error        bad_request
    │   ├── MethodNotAllowed       405   invalid_request_error  bad_request
    │   ├── RequestTimeout         408   invalid_request_error  bad_request
    │   ├── PayloadTooLarge        413   request_too_large      bad_request
    │   ├── UnsupportedMediaType   415   invalid_request_error  bad_request
    │   └── MisdirectedRequest     421   invalid_request_error  bad_request
    ├── Overloaded                 503   overloaded_error       overloaded
    └── UpstreamError              502   api_error              net
        ├── UpstreamTooLarge       502   api_error              net
        └── UpstreamTimeout        504   timeout_error          timeout

Each protocol's adapter (proxy.protocols) writes the error JSON in its own shape, and
proxy.server.errors is the one place that answers an error with it.
"""

from __future__ import annotations


class ShimError(Exception):
    status = 500
    error_type = "api_error"
    err_type: str | None = None

    def __init__(
        self,
        message: str,
        *,
        rid: str | None = None,
        lane: str | None = None,
        close_connection: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.rid = rid
        self.lane = lane
        # the request body could not be read to its end: the connection cannot be reused
        self.close_connection = close_connection


class BadRequest(ShimError):
    status = 400
    error_type = "invalid_request_error"
    err_type = "bad_request"


class Unauthorized(BadRequest):
    status = 401
    error_type = "authentication_error"


class Forbidden(BadRequest):
    """A request the shim refuses for where it came from (a cross-site `Origin`)."""

    status = 403
    error_type = "permission_error"


class NotFound(BadRequest):
    status = 404
    error_type = "not_found_error"


class MethodNotAllowed(BadRequest):
    status = 405


class RequestTimeout(BadRequest):
    """The client did not send its request body in time (CCP_CLIENT_BODY_TIMEOUT)."""

    status = 408


class PayloadTooLarge(BadRequest):
    status = 413
    error_type = "request_too_large"


class UnsupportedMediaType(BadRequest):
    status = 415


class MisdirectedRequest(BadRequest):
    """A `Host` that does not name the shim (DNS rebinding): CCP_ALLOWED_HOSTS."""

    status = 421


class Overloaded(ShimError):
    """More connections than CCP_MAX_CONNECTIONS: try again later."""

    status = 503
    error_type = "overloaded_error"
    err_type = "overloaded"


class InternalError(ShimError):
    """A bug in the shim, answered in the protocol's shape (the log has the traceback)."""

    status = 500
    err_type = "internal"


class UpstreamError(ShimError):
    status = 502
    error_type = "api_error"
    err_type = "net"


class UpstreamTooLarge(UpstreamError):
    """The upstream's answer grew past CCP_MAX_RESPONSE_BYTES: cut."""


class UpstreamTimeout(UpstreamError):
    status = 504
    error_type = "timeout_error"
    err_type = "timeout"
