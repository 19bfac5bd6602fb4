"""A signed policy pack steers the real shim: fetched and applied, then served from the cache when the
policy server is gone, and replaced by the embedded default when the signature does not verify.
The pack and its key are minted here; the policy server is the stdlib's `http.server`, as in the
operators' instructions (fixtures/policy/README.md).
"""
from __future__ import annotations

import json
import threading
from functools import partial
from http.server import HTTPServer, SimpleHTTPRequestHandler

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from harness.probes import http_probe
from harness.shim import wait_until
from proxy.licence.verify import public_key_b64, sign_bytes

pytestmark = pytest.mark.licence

PAUSED = json.dumps({"version": 1, "id": "pause-1", "routing": {"offload_paused": True}}).encode()


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def _haiku(shim, logs) -> dict:
    """Probe haiku; its usage record (in the shared logs folder, not the shim's own)."""
    res = http_probe(shim.url, "claude-haiku-4-5", api_key="k")
    assert res.ok, res.row()

    def find():
        path = logs / "usage.jsonl"
        lines = path.read_text().splitlines() if path.exists() else []
        return next((r for r in map(json.loads, filter(None, lines)) if r["rid"] == res.rid), None)
    return wait_until(find, 10, f"the usage record of {res.rid}")


def test_policy_remote_cache_embedded(make_shim, mock_anthropic, mock_zai, tmp_path):
    key = Ed25519PrivateKey.generate()
    site = tmp_path / "site"
    site.mkdir()
    (site / "policy.json").write_bytes(PAUSED)
    (site / "policy.json.sig").write_text(sign_bytes(PAUSED, key) + "\n")
    pubkey = tmp_path / "policy_pubkey.b64"
    pubkey.write_text(public_key_b64(key) + "\n")
    logs = tmp_path / "logs"  # one logs folder for all three starts: it holds the cache
    server = HTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {"CCP_POLICY_URL": f"http://127.0.0.1:{server.server_address[1]}/",
           "CCP_POLICY_PUBKEY": str(pubkey), "CCP_LOGS_DIR": str(logs)}
    try:
        shim = make_shim(env=env)
        assert _haiku(shim, logs)["decision"] == "offload_paused"
        shim.stop()
        assert "[policy] applied id=pause-1" in shim.stderr_tail(50)
        assert (logs / "policy-cache.json").exists()
    finally:
        server.shutdown()
        server.server_close()

    shim = make_shim(env=env)  # the policy server is gone: the cached copy still applies
    assert _haiku(shim, logs)["decision"] == "offload_paused"
    shim.stop()
    assert "[policy] fetch failed" in shim.stderr_tail(50)

    (site / "policy.json").write_bytes(PAUSED.replace(b"true", b"false"))  # signature now stale
    server = HTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env["CCP_POLICY_URL"] = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        shim = make_shim(env=env)
        rec = _haiku(shim, logs)
        assert (rec["lane"], rec["decision"]) == ("zai", "to_zai")  # the embedded default
        shim.stop()
        assert "bad signature: using the embedded default" in shim.stderr_tail(50)
    finally:
        server.shutdown()
        server.server_close()
