import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from proxy.config import policy
from proxy.config.load import load_settings
from proxy.core.parse import ConfigError
from proxy.licence.verify import public_key_b64, public_key_from_b64, sign_bytes

pytestmark = pytest.mark.quick

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "policy"
PAUSED = json.dumps({"version": 1, "id": "p-1", "routing": {"offload_paused": True,
                                                            "zai_header_mode": "authorization"}}).encode()


@pytest.fixture(scope="module")
def key():
    return Ed25519PrivateKey.generate()


def serving(raw: bytes, sig: str):
    calls = []

    def fetcher(url):
        calls.append(url)
        return raw, sig
    fetcher.calls = calls
    return fetcher


def failing(url):
    raise policy.FetchError("ConnectError")


def test_the_committed_sample_verifies(tmp_path):
    raw = (FIXTURES / "policy.json").read_bytes()
    key = policy.load_pubkey(str(FIXTURES / "policy_pubkey.b64"))
    (tmp_path / "a-file").write_text("")  # a cache whose folder cannot be made: still applied
    out = policy.resolve("http://x/", key, tmp_path / "a-file" / "cache.json", 0,
                         serving(raw, (FIXTURES / "policy.json.sig").read_text().strip()))
    assert out.source == "remote" and "not cached" in out.message
    assert out.defaults == policy.RoutingDefaults(True, False, "x-api-key", "sample-2026-01")


def test_pack_urls():
    assert policy.pack_urls("http://h:1/p/") == ("http://h:1/p/policy.json", "http://h:1/p/policy.json.sig")
    assert policy.pack_urls("http://h/x.json") == ("http://h/x.json", "http://h/x.json.sig")


@pytest.mark.parametrize("doc, match", [
    (b"[]", "routing"), (b"\xff", "UTF-8"), (b'{"routing": {"offload_paused": "yes"}}', "offload_paused"),
    (b'{"routing": {"zai_header_mode": "cookie"}}', "zai_header_mode")])
def test_parse_policy_names_the_problem(doc, match):
    with pytest.raises(ValueError, match=match):
        policy.parse_policy(doc)


def test_remote_then_cache_then_embedded(key, tmp_path):
    pub = public_key_from_b64(public_key_b64(key))
    cache = tmp_path / "logs" / "policy-cache.json"
    good = serving(PAUSED, sign_bytes(PAUSED, key))
    out = policy.resolve("http://h/", pub, cache, 1_800_000_000, good)
    assert (out.source, out.defaults.offload_paused) == ("remote", True)
    assert "[policy] applied id=p-1" in out.message and cache.exists()
    out = policy.resolve("http://h/", pub, cache, 0, failing)
    assert (out.source, out.defaults.id) == ("cache", "p-1") and "fetch failed" in out.message
    cache.write_text(cache.read_text().replace("p-1", "p-2"))  # a tampered cache is not used
    out = policy.resolve("http://h/", pub, cache, 0, failing)
    assert out.source == "embedded" and "rejected (bad signature)" in out.message
    cache.unlink()
    out = policy.resolve("http://h/", pub, cache, 0, failing)
    assert out.source == "embedded" and "no cache" in out.message
    assert out.defaults == policy.EMBEDDED_POLICY


def test_bad_signature_uses_the_embedded_default_even_with_a_cache(key, tmp_path):
    pub = public_key_from_b64(public_key_b64(key))
    cache = tmp_path / "policy-cache.json"
    policy.resolve("http://h/", pub, cache, 0, serving(PAUSED, sign_bytes(PAUSED, key)))
    forged = PAUSED.replace(b"p-1", b"p-9")
    out = policy.resolve("http://h/", pub, cache, 0, serving(forged, sign_bytes(PAUSED, key)))
    assert out.source == "embedded" and "bad signature" in out.message
    other = Ed25519PrivateKey.generate()
    out = policy.resolve("http://h/", pub, cache, 0, serving(PAUSED, sign_bytes(PAUSED, other)))
    assert out.source == "embedded"


def test_apply_leaves_explicit_env_alone(key, tmp_path):
    defaults = policy.parse_policy(PAUSED)
    s = policy.apply(load_settings({}), defaults)
    assert s.offload_paused and s.zai_header_mode == "authorization"
    s = policy.apply(load_settings({"OFFLOAD_PAUSED": "0"}), defaults)
    assert not s.offload_paused and s.zai_header_mode == "authorization"


def test_load_for(key, tmp_path):
    pubfile = tmp_path / "pub.b64"
    pubfile.write_text(public_key_b64(key) + "\n")
    env = {"CCP_POLICY_URL": "http://127.0.0.1:9/", "CCP_POLICY_PUBKEY": str(pubfile),
           "CCP_LOGS_DIR": str(tmp_path / "logs"), "OFFLOAD_PAUSED": "0"}
    s, out = policy.load_for(load_settings(env), 0, serving(PAUSED, sign_bytes(PAUSED, key)))
    assert out.source == "remote" and "env keeps offload_paused" in out.message
    assert not s.offload_paused and s.zai_header_mode == "authorization"
    assert (tmp_path / "logs" / "policy-cache.json").exists()
    assert policy.load_for(load_settings({}), 0) == (load_settings({}), None)
    with pytest.raises(ConfigError, match="CCP_POLICY_PUBKEY"):
        policy.load_for(load_settings({"CCP_POLICY_URL": "http://127.0.0.1:9/"}), 0)
    with pytest.raises(ConfigError, match="CCP_POLICY_PUBKEY"):
        load_settings({"CCP_POLICY_PUBKEY": str(tmp_path / "missing")})


def test_fetch_over_http(key, tmp_path):
    """The real fetcher against a local server: 200s verify, a 404 is a FetchError."""
    import threading
    from functools import partial
    from http.server import HTTPServer, SimpleHTTPRequestHandler

    (tmp_path / "policy.json").write_bytes(PAUSED)
    (tmp_path / "policy.json.sig").write_text(sign_bytes(PAUSED, key) + "\n")

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *a):
            pass
    server = HTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(tmp_path)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        raw, sig = policy.fetch(base + "/")
        assert raw == PAUSED and sig == sign_bytes(PAUSED, key)
        with pytest.raises(policy.FetchError, match="404"):
            policy.fetch(base + "/elsewhere/")
    finally:
        server.shutdown()
        server.server_close()
    with pytest.raises(policy.FetchError):
        policy.fetch(base + "/", timeout=1.0)
