import asyncio
import json

import pytest
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from proxy.licence import verify as lic
from proxy.licence.issuer import (
    DEVICE_TTL,
    InviteBook,
    IssueError,
    Issuer,
    create_app,
    parse_duration,
    parse_invites,
)

pytestmark = pytest.mark.quick

NOW = 1_800_000_000
INVITES = [{"code": "TRIAL", "plan": "trial", "features": ["zai_offload"], "duration": "14d",
            "max_uses": 1},
           {"code": "TEAM", "plan": "team", "features": [], "duration": 3600, "max_uses": 5}]


class Clock:
    def __init__(self):
        self.t = float(NOW)

    def __call__(self):
        return self.t


@pytest.fixture
def setup(tmp_path):
    invites = tmp_path / "invites.yaml"
    invites.write_text(json.dumps({"invites": INVITES}))  # JSON is YAML too
    key, clock = Ed25519PrivateKey.generate(), Clock()
    issuer = Issuer(key, "iss-1", InviteBook.load(invites), clock=clock, interval=0)
    return issuer, key, clock, invites


def call(issuer, steps):
    """Run `steps(client)` against the issuer app in a test server; returns its result."""
    async def main():
        async with TestClient(TestServer(create_app(issuer))) as client:
            return await steps(client)
    return asyncio.run(main())


def test_parse_invites_and_durations():
    assert parse_duration("14d") == 14 * 86400 and parse_duration(90) == 90
    invites = parse_invites(INVITES)
    assert invites["TRIAL"].features == ("zai_offload",) and invites["TEAM"].max_uses == 5
    for bad, match in (([{"plan": "x"}], "code"), ([{"code": "a", "max_uses": 0}], "max_uses"),
                       ([{"code": "a", "duration": "soon"}], "duration"),
                       ([{"code": "a"}, {"code": "a"}], "duplicate"), ({"x": 1}, "list")):
        with pytest.raises(ValueError, match=match):
            parse_invites(bad)


def test_issue_signs_a_verifiable_pack_and_counts_uses(setup, tmp_path):
    issuer, key, clock, invites = setup

    async def steps(client):
        ok = await client.post("/v1/license/issue", json={"invite_code": "TRIAL", "email": "a@b.c"})
        again = await client.post("/v1/license/issue", json={"invite_code": "TRIAL", "email": "a@b.c"})
        unknown = await client.post("/v1/license/issue", json={"invite_code": "NOPE", "email": "a@b.c"})
        bad = await client.post("/v1/license/issue", json={"invite_code": "TEAM"})
        junk = await client.post("/v1/license/issue", data=b"not json",
                                 headers={"content-type": "application/json"})
        return (ok.status, await ok.json(), again.status, await again.json(), unknown.status,
                await unknown.json(), bad.status, junk.status)

    status, pack, again, again_body, unknown, unknown_body, bad, junk = call(issuer, steps)
    assert status == 200
    state = lic.verify(pack, {"iss-1": key.public_key()}, NOW + 1)
    assert state.ok and state.plan == "trial" and state.subject == "a@b.c"
    assert state.expires_at == NOW + 14 * 86400
    assert (again, again_body["error"]) == (409, "invite_used_up")
    assert (unknown, unknown_body["error"]) == (404, "unknown_invite")
    assert (bad, junk) == (400, 400)
    # the use count survives a restart of the issuer
    assert json.loads((tmp_path / "invites.yaml.state.json").read_text()) == {"uses": {"TRIAL": 1}}
    with pytest.raises(IssueError) as exc:
        InviteBook.load(invites).check("TRIAL")
    assert exc.value.status == 409


def test_device_flow(setup):
    issuer, key, clock, _ = setup

    async def steps(client):
        code = await (await client.post("/v1/device/code", json={})).json()
        pending = await client.post("/v1/device/token", json={"device_code": code["device_code"]})
        page = await client.get("/device", params={"user_code": code["user_code"]})
        wrong = await client.post("/v1/device/approve", json={
            "user_code": "XXXX-XXXX", "invite_code": "TEAM", "email": "a@b.c"})
        approve = await client.post("/v1/device/approve", json={
            "user_code": code["user_code"].lower(), "invite_code": "TEAM", "email": "a@b.c"})
        token = await client.post("/v1/device/token", json={"device_code": code["device_code"]})
        twice = await client.post("/v1/device/token", json={"device_code": code["device_code"]})
        return (code, pending.status, (await pending.json())["error"], await page.text(),
                wrong.status, approve.status, await approve.json(), token.status,
                await token.json(), twice.status)

    code, pending, pending_err, page, wrong, approve, approve_body, token, pack, twice = \
        call(issuer, steps)
    assert code["verification_uri"].endswith("/device") and code["interval"] == 0
    assert code["user_code"] in code["verification_uri_complete"]
    assert (pending, pending_err) == (428, "authorization_pending")
    assert code["user_code"] in page and 'action="/v1/device/approve"' in page
    assert wrong == 404 and approve == 200 and approve_body["redirect_to"] is None
    assert token == 200 and lic.verify(pack, {"iss-1": key.public_key()}, NOW).plan == "team"
    assert twice == 400


def test_device_flow_form_redirects_to_loopback_and_expires(setup):
    issuer, key, clock, _ = setup

    async def steps(client):
        bad = await client.post("/v1/device/code", json={"redirect_uri": "http://evil.test/cb"})
        code = await (await client.post("/v1/device/code", json={
            "redirect_uri": "http://127.0.0.1:5/callback"})).json()
        form = await client.post("/v1/device/approve", allow_redirects=False, data={
            "user_code": code["user_code"], "invite_code": "TEAM", "email": "a@b.c"})
        late = await (await client.post("/v1/device/code", json={})).json()
        clock.t += DEVICE_TTL + 1
        expired = await client.post("/v1/device/token", json={"device_code": late["device_code"]})
        return bad.status, form.status, form.headers.get("location"), (await expired.json())["error"]

    bad, status, location, expired = call(issuer, steps)
    assert bad == 400
    assert status == 303 and location.startswith("http://127.0.0.1:5/callback?user_code=")
    assert expired == "expired_token"
