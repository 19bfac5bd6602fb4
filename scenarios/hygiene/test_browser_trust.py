"""Localhost is not a trust boundary for a browser: against the real shim process, a rebound Host, a
cross-site Origin and a cross-site form post are refused, recorded for model paths, and nothing
reaches an upstream; the admin token never leaves; a non-loopback bind without a token is refused."""
from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

from harness.shim import PROJECT_ROOT, clean_env

pytestmark = [pytest.mark.hygiene]

BODY = {"model": "claude-sonnet-4-5", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}


def test_rebound_hosts_and_cross_site_origins_are_refused_and_recorded(make_shim, mock_anthropic,
                                                                        mock_zai, keys):
    shim = make_shim()
    auth = {"x-api-key": keys["CLIENT_API_KEY"]}
    with httpx.Client(base_url=shim.url, trust_env=False, timeout=10) as client:
        r = client.post("/v1/messages", json=BODY, headers={**auth, "host": "attacker.example:18080"})
        assert r.status_code == 421 and r.json()["type"] == "error"
        r = client.post("/v1/messages", json=BODY, headers={**auth, "origin": "https://attacker.example"})
        assert r.status_code == 403 and r.json()["error"]["type"] == "permission_error"
        # a form a page can post without asking: refused, and the shim is not paused
        r = client.post("/v1/admin/controls", content=b'{"paused": true}',
                        headers={"content-type": "text/plain"})
        assert r.status_code == 415
        assert client.get("/v1/admin/controls").json()["paused"] is False
        # the same page under its own (rebound) name reads nothing either
        assert client.get("/v1/usage", headers={"host": "attacker.example"}).status_code == 421
        assert client.post("/v1/messages", json=BODY, headers=auth).status_code == 200
    assert len(mock_anthropic.calls) == 1 and mock_zai.calls == []
    recs = shim.wait_for_records(3)
    assert [(r["status"], r["reason"]) for r in recs[:2]] == [(421, "refused"), (403, "refused")]
    assert recs[2]["status"] == 200


def test_the_admin_token_never_reaches_an_upstream(make_shim, mock_anthropic, mock_zai, keys):
    token = "ccp-admin-" + "7" * 24
    shim = make_shim({"CCP_ADMIN_TOKEN": token})
    with httpx.Client(base_url=shim.url, trust_env=False, timeout=10) as client:
        for headers in ({"authorization": f"Bearer {token}"},
                        {"x-api-key": keys["CLIENT_API_KEY"], "x-ccp-admin-token": token}):
            for model in ("claude-sonnet-4-5", "claude-haiku-4-5"):
                r = client.post("/v1/messages", json={**BODY, "model": model}, headers=headers)
                assert r.status_code in (200, 401), r.text
    calls = mock_anthropic.calls + mock_zai.calls
    assert calls
    for call in calls:
        assert token not in str(call.headers)
        assert not [k for k in call.headers if k.lower().startswith("x-ccp")]


def test_a_non_loopback_bind_without_an_admin_token_exits_2():
    """(Refused before binding: nothing listens beyond 127.0.0.1 in this test.)"""
    out = subprocess.run([sys.executable, "-m", "proxy", "serve", "--host", "0.0.0.0", "--port", "0"],
                         env=clean_env({}), cwd=PROJECT_ROOT, stdin=subprocess.DEVNULL,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "CCP_ADMIN_TOKEN" in out.stderr and "--insecure-bind" in out.stderr
    assert out.stdout == ""  # never announced a port
