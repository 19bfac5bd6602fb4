"""Licence enforcement end to end: the real shim restarted three times — no licence → a trial
licence → no licence — with `CCP_LICENSE_ENFORCE=1`. Haiku goes to the anthropic lane with
`decision: license_block` without a licence and to Z.AI (`to_zai`) with one; the startup log line and
the `/readyz` `license` object say which. Keys and licences are minted here; nothing expires in the repo.

`USE_LICENSE_LOGIN=1` gets the trial licence the way a person would: the issuer runs as a process
(`python -m proxy license issuer`, seed minted here) and `ccp license login --invite … --no-browser`
stores the pack under a CCP_CONFIG_HOME that the second shim then reads as ~/.config/ccp.
"""
from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from harness.probes import http_probe
from harness.shim import PROJECT_ROOT, clean_env
from proxy.core.parse import truthy
from proxy.licence import verify as lic

pytestmark = pytest.mark.licence

KID = "smoke"
USE_LOGIN = truthy(os.environ.get("USE_LICENSE_LOGIN"))


def _minted_pack(key: Ed25519PrivateKey) -> dict:
    now = int(time.time())
    return lic.make_pack({"id": "lic-smoke", "plan": "trial", "features": ["zai_offload"],
                          "issued_at": now, "expires_at": now + 3600, "kid": KID,
                          "subject": "smoke@example.com"}, key)


def _read_json_line(proc: subprocess.Popen, timeout: float) -> dict:
    deadline, buf = time.monotonic() + timeout, b""
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0 or not sel.select(left):
                raise TimeoutError("the issuer did not announce its port")
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                raise RuntimeError(f"the issuer exited with {proc.wait()}")
            buf += chunk
    return json.loads(buf.split(b"\n", 1)[0])


def _login(tmp_path, seed_b64: str, trust: str) -> str:
    """Run the issuer and `ccp license login`; return the CCP_CONFIG_HOME holding the pack."""
    seed = tmp_path / "issuer.seed"
    seed.write_text(seed_b64)
    seed.chmod(0o600)
    invites = tmp_path / "invites.yaml"
    invites.write_text("- {code: SMOKE-TRIAL, plan: trial, features: [zai_offload], duration: 1h, "
                       "max_uses: 1}\n")
    issuer = subprocess.Popen(
        [sys.executable, "-m", "proxy", "license", "issuer", "--seed-file", str(seed), "--invites",
         str(invites), "--kid", KID, "--port", "0", "--interval", "0"],
        env=clean_env(), cwd=str(PROJECT_ROOT), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL)
    try:
        announce = _read_json_line(issuer, 20)
        assert announce["kid"] == KID
        assert trust == f"{KID}={announce['public_key']}"
        home = tmp_path / "login-home"
        done = subprocess.run(
            [sys.executable, "-m", "proxy", "license", "login", "--issuer", announce["url"],
             "--invite", "SMOKE-TRIAL", "--no-browser", "--timeout", "20"],
            env=clean_env({"CCP_CONFIG_HOME": str(home), "CCP_LICENSE_PUBKEY_B64": trust}),
            cwd=str(PROJECT_ROOT), capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert "enter the code" in done.stdout and "licence: valid" in done.stdout
        return str(home)
    finally:
        issuer.send_signal(signal.SIGTERM)
        issuer.wait(10)
        issuer.stdout.close()


def _check(shim, mock_zai, lane: str, decision: str) -> dict:
    before = len(mock_zai.calls)
    res = http_probe(shim.url, "claude-haiku-4-5", api_key="k")
    assert res.ok, res.row()
    rec = shim.record_for(res.rid)
    assert (rec["lane"], rec["decision"]) == (lane, decision)
    assert len(mock_zai.calls) - before == (1 if lane == "zai" else 0)
    sonnet = shim.record_for(http_probe(shim.url, "claude-sonnet-4-5", api_key="k").rid)
    assert (sonnet["lane"], sonnet["decision"]) == ("anthropic", "to_anth")
    ready = httpx.get(f"{shim.url}/readyz", timeout=10, trust_env=False)
    assert ready.status_code == 200  # a licence never makes the shim unready
    return ready.json()["license"]


def test_no_licence_then_trial_then_no_licence(make_shim, mock_anthropic, mock_zai, tmp_path):
    seed = lic.generate_seed()  # the issuer's key, minted for this run only
    key = lic.private_key_from_seed(seed)
    trust = f"{KID}={lic.public_key_b64(key)}"
    base = {"CCP_LICENSE_ENFORCE": "1", "CCP_LICENSE_PUBKEY_B64": trust}

    shim = make_shim(env=base)
    view = _check(shim, mock_zai, "anthropic", "license_block")
    assert (view["ok"], view["enforced"], view["reason"]) == (False, True, "missing")
    shim.stop()
    assert "[license] rejected: missing" in shim.stderr_tail(50)

    if USE_LOGIN:
        with_licence = {"CCP_CONFIG_HOME": _login(tmp_path, seed, trust)}
    else:
        pack_file = tmp_path / "trial.pack"
        pack_file.write_text(json.dumps(_minted_pack(key)))
        with_licence = {"CC_LICENSE_PACK": str(pack_file)}
    shim = make_shim(env={**base, **with_licence})
    view = _check(shim, mock_zai, "zai", "to_zai")
    assert (view["ok"], view["plan"], view["features"], view["reason"]) == \
        (True, "trial", ["zai_offload"], None)
    assert view["expires_at"].endswith("Z")
    shim.stop()
    log = shim.stderr_tail(50)
    assert "[license] plan=trial features=[zai_offload]" in log
    assert key_material_absent(log, key)

    shim = make_shim(env=base)
    view = _check(shim, mock_zai, "anthropic", "license_block")
    assert view["reason"] == "missing"


def key_material_absent(text: str, key: Ed25519PrivateKey) -> bool:
    return lic.public_key_b64(key) not in text and "signature" not in text
