"""The one admin guard."""
import pytest
from aiohttp.test_utils import make_mocked_request

from proxy.config.settings import Settings
from proxy.core.errors import Unauthorized
from proxy.core.redact import Secret
from proxy.server.auth import SETTINGS, require_admin

pytestmark = pytest.mark.quick


def _request(token: str, headers: dict):
    from aiohttp import web
    app = web.Application()
    app[SETTINGS] = Settings(admin_token=Secret(token))
    return make_mocked_request("POST", "/v1/admin/controls", headers=headers, app=app)


def test_no_token_configured_lets_every_call_through():
    require_admin(_request("", {}))


@pytest.mark.parametrize("headers", [{"authorization": "Bearer admin-secret-1"},
                                     {"x-ccp-admin-token": "admin-secret-1"},
                                     {"Authorization": "bearer admin-secret-1"}])
def test_the_token_in_either_header(headers):
    require_admin(_request("admin-secret-1", headers))


@pytest.mark.parametrize("headers", [{}, {"authorization": "Bearer wrong"},
                                     {"x-ccp-admin-token": "admin-secret-"}])
def test_a_missing_or_wrong_token_is_a_401(headers):
    with pytest.raises(Unauthorized, match="CCP_ADMIN_TOKEN"):
        require_admin(_request("admin-secret-1", headers))


@pytest.mark.parametrize("value", ["Bearer\tadmin-secret-1", "Bearer   admin-secret-1",
                                   "bearer \t admin-secret-1"])
def test_the_admin_token_after_any_whitespace(value):
    require_admin(_request("admin-secret-1", {"authorization": value}))


def test_the_admin_token_without_the_bearer_scheme_is_a_401():
    with pytest.raises(Unauthorized):
        require_admin(_request("admin-secret-1", {"authorization": "admin-secret-1"}))
