import asyncio
import io
import json
import threading
import time

import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from proxy.cli.licence import main
from proxy.cli.main import main as ccp_main
from proxy.licence import verify as lic
from proxy.licence.issuer import InviteBook, Issuer, create_app

pytestmark = pytest.mark.quick


@pytest.fixture(scope="module")
def key():
    return Ed25519PrivateKey.generate()


@pytest.fixture
def env(tmp_path, key):
    return {"CCP_CONFIG_HOME": str(tmp_path / "home"), "CCP_LICENSE_ENFORCE": "1",
            "CCP_LICENSE_PUBKEY_B64": f"k1={lic.public_key_b64(key)}"}


def pack(key, **over):
    now = int(time.time())
    base = {"id": "lic-1", "plan": "trial", "features": ["zai_offload"], "issued_at": now,
            "expires_at": now + 10 * 86400 + 60, "kid": "k1", "subject": "a@b.c"}
    return lic.make_pack({**base, **over}, key)


def test_set_from_a_file_then_status(env, key, tmp_path, capsys):
    src, minted = tmp_path / "p.json", pack(key)
    src.write_text(json.dumps(minted))
    assert main(["set", str(src)], env) == 0
    stored = tmp_path / "home" / "license.pack"
    assert json.loads(stored.read_text()) == minted
    assert stored.stat().st_mode & 0o077 == 0
    out = capsys.readouterr().out
    assert "licence: valid" in out and "restart" in out
    assert main(["status"], env) == 0
    out = capsys.readouterr().out
    for part in ("plan: trial", "kid: k1", "features: zai_offload", "(10 days left)",
                 f"from {stored}", "enforcement: on"):
        assert part in out
    assert minted["signature"] not in out


def test_set_from_stdin_refuses_an_invalid_pack_unless_forced(env, key, tmp_path, capsys,
                                                              monkeypatch):
    bad = pack(key, expires_at=1)
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(bad)))
    assert main(["set"], env) == 1
    assert "not stored: expired" in capsys.readouterr().err
    assert not (tmp_path / "home" / "license.pack").exists()
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(bad)))
    assert main(["set", "-", "--force"], env) == 0
    assert main(["status"], env) == 1
    assert "rejected: expired" in capsys.readouterr().out
    monkeypatch.setattr("sys.stdin", io.StringIO("{nope"))
    assert main(["set"], env) == 2


def test_status_without_a_licence(env, capsys):
    assert main(["status"], env) == 1
    out = capsys.readouterr().out
    assert "licence: missing" in out and "haiku stays on anthropic (missing)" in out


def test_keygen_writes_a_private_seed_and_prints_the_public_key(tmp_path, capsys):
    out = tmp_path / "issuer.seed"
    assert main(["keygen", "--out", str(out)]) == 0
    public = capsys.readouterr().out.strip()
    assert lic.public_key_b64(lic.private_key_from_seed(out.read_text())) == public
    assert out.stat().st_mode & 0o077 == 0
    assert main(["keygen", "--out", str(out)]) == 2  # never overwrites a key


def test_license_is_a_ccp_verb(capsys):
    with pytest.raises(SystemExit):
        ccp_main(["license", "--help"])
    assert "status" in capsys.readouterr().out


@pytest.fixture
def issuer(tmp_path, key):
    invites = tmp_path / "invites.yaml"
    invites.write_text("- {code: TRIAL, plan: trial, features: [zai_offload], duration: 1d, max_uses: 1}\n")
    app = create_app(Issuer(key, "k1", InviteBook.load(invites), interval=0))
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app, access_log=None)
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", 0).start())
    port = runner.addresses[0][1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


@pytest.mark.parametrize("loopback", [False, True])
def test_login_with_an_invite(env, issuer, tmp_path, capsys, loopback):
    argv = ["login", "--issuer", issuer, "--invite", "TRIAL", "--no-browser", "--timeout", "10"]
    assert main(argv + (["--loopback"] if loopback else []), env) == 0
    out = capsys.readouterr().out
    assert "enter the code" in out and "licence: valid" in out
    state = lic.load_state(None, env["CCP_CONFIG_HOME"], None, None,
                           lic.parse_trusted_keys(env["CCP_LICENSE_PUBKEY_B64"]), time.time())
    assert state.ok and state.plan == "trial" and state.features == ("zai_offload",)
    assert main(argv, env) == 1  # the invite is used up
    assert "invite_used_up" in capsys.readouterr().err


def test_login_against_nothing_fails_cleanly(env, capsys):
    assert main(["login", "--issuer", "http://127.0.0.1:9", "--invite", "X", "--no-browser"], env) == 1
    assert "LoginError" in capsys.readouterr().err
