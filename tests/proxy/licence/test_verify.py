import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from proxy.config.load import load_settings, with_licence_pack
from proxy.core.parse import ConfigError
from proxy.licence import verify as lic

pytestmark = pytest.mark.quick

NOW = 1_800_000_000


@pytest.fixture(scope="module")
def key():
    return Ed25519PrivateKey.generate()


def licence(**over):
    base = {"id": "lic-1", "plan": "trial", "features": ["zai_offload"], "issued_at": NOW - 60,
            "expires_at": NOW + 86400, "kid": "k1", "subject": "ops@example.com"}
    return {**base, **over}


def trusted(key, kid="k1"):
    return lic.parse_trusted_keys(f"{kid}={lic.public_key_b64(key)}")


def test_canonical_bytes_are_sorted_compact_utf8():
    assert lic.canonical_bytes({"b": 1, "a": {"d": "é", "c": [2, 1]}}) == \
        '{"a":{"c":[2,1],"d":"é"},"b":1}'.encode()
    with pytest.raises(ValueError, match="floats"):
        lic.canonical_bytes({"expires_at": 1.5})


def test_a_valid_licence(key):
    state = lic.verify(lic.make_pack(licence(), key), trusted(key), NOW)
    assert state.ok and state.reason is None
    assert (state.plan, state.kid, state.features, state.expires_at) == \
        ("trial", "k1", ("zai_offload",), NOW + 86400)
    assert lic.allows(state, "zai_offload") and lic.offload_reason(state) is None


def test_key_order_of_the_pack_does_not_matter(key):
    pack = lic.make_pack(licence(), key)
    reordered = json.loads(json.dumps({"signature": pack["signature"],
                                       "license": dict(reversed(list(pack["license"].items())))}))
    assert lic.verify(reordered, trusted(key), NOW).ok


@pytest.mark.parametrize("mutate, reason", [
    (lambda p: p["license"].update(plan="enterprise"), "bad_signature"),
    (lambda p: p["license"]["features"].append("more"), "bad_signature"),
    (lambda p: p.update(signature=p["signature"][:-8] + "AAAAAAA="), "bad_signature"),
    (lambda p: p.update(signature="not base64!"), "bad_signature"),
    (lambda p: p["license"].update(kid="stranger"), "unknown_kid"),
    (lambda p: p["license"].pop("expires_at"), "malformed"),
    (lambda p: p["license"].update(expires_at="tomorrow"), "malformed"),
    (lambda p: p.pop("signature"), "malformed"),
])
def test_tampering_is_named(key, mutate, reason):
    pack = lic.make_pack(licence(), key)
    mutate(pack)
    state = lic.verify(pack, trusted(key), NOW)
    assert not state.ok and state.reason == reason
    assert not lic.allows(state, "zai_offload")


def test_expired_and_missing(key):
    assert lic.verify(lic.make_pack(licence(expires_at=NOW), key), trusted(key), NOW).reason == "expired"
    assert lic.verify(None, trusted(key), NOW) == lic.LicenceState.missing()


def test_another_key_with_the_same_kid_is_a_bad_signature(key):
    other = Ed25519PrivateKey.generate()
    assert lic.verify(lic.make_pack(licence(), other), trusted(key), NOW).reason == "bad_signature"


def test_a_valid_licence_without_the_feature(key):
    state = lic.verify(lic.make_pack(licence(features=["reports"]), key), trusted(key), NOW)
    assert state.ok and not lic.allows(state, "zai_offload")
    assert lic.offload_reason(state) == "no_zai_offload"


def test_trusted_keys_spec(key):
    b64 = lic.public_key_b64(key)
    assert set(lic.parse_trusted_keys(f"a={b64}, b={b64};c={b64}")) == {"a", "b", "c"}
    with pytest.raises(ValueError, match="'bad'"):
        lic.parse_trusted_keys("bad=AAAA")
    with pytest.raises(ValueError, match="KID=BASE64"):
        lic.parse_trusted_keys(b64)


def test_log_line_and_readiness_view_show_no_key_material(key):
    pack = lic.make_pack(licence(), key)
    state = lic.verify(pack, trusted(key), NOW)
    line = lic.log_line(state, enforced=True)
    assert line.startswith("[license] plan=trial features=[zai_offload]")
    assert pack["signature"] not in line and lic.public_key_b64(key) not in line
    view = lic.readiness_view(state, True)
    assert view["ok"] and view["plan"] == "trial" and view["expires_at"].endswith("Z")
    expired = lic.verify(lic.make_pack(licence(expires_at=NOW - 1), key), trusted(key), NOW)
    assert lic.log_line(expired, True).startswith("[license] rejected: expired")
    assert lic.readiness_view(expired, True)["ok"] is False
    assert lic.readiness_view(lic.LicenceState.missing(), False) | {} == {
        "ok": True, "enforced": False, "valid": False, "plan": None, "kid": None, "features": [],
        "expires_at": None, "reason": "missing", "source": None}


# Loading (load_settings): the sources, in order.
def _env(key, tmp_path, **extra):
    return {"CCP_CONFIG_HOME": str(tmp_path / "home"), "CCP_LICENSE_ENFORCE": "1",
            "CCP_LICENSE_PUBKEY_B64": f"k1={lic.public_key_b64(key)}", **extra}


def test_settings_without_a_licence_block_haiku_only_when_enforced(key, tmp_path):
    s = load_settings(_env(key, tmp_path), now=NOW)
    assert s.licence.reason == "missing" and s.licence_enforce
    assert s.routing.licence_enforced and not s.routing.licence_allows_offload
    assert not load_settings({}, now=NOW).routing.licence_enforced


def test_settings_sources_in_order(key, tmp_path):
    trial, basic, pro = (lic.make_pack(licence(plan=p), key) for p in ("trial", "basic", "pro"))
    pack_file = tmp_path / "pack.json"
    pack_file.write_text(json.dumps(trial))
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "license.pack").write_text(json.dumps(basic))
    env_pair = {"CC_LICENSE_JSON": json.dumps(pro["license"]), "CC_LICENSE_SIG": pro["signature"]}
    s = load_settings(_env(key, tmp_path, CC_LICENSE_PACK=str(pack_file), **env_pair), now=NOW)
    assert (s.licence.plan, s.licence.source) == ("trial", str(pack_file))
    s = load_settings(_env(key, tmp_path, **env_pair), now=NOW)
    assert s.licence.plan == "basic" and s.licence.source.endswith("license.pack")
    (tmp_path / "home" / "license.pack").unlink()
    s = load_settings(_env(key, tmp_path, **env_pair), now=NOW)
    assert (s.licence.plan, s.licence.source, s.licence.ok) == ("pro", "CC_LICENSE_JSON", True)
    assert s.routing.licence_allows_offload
    assert with_licence_pack(s, str(pack_file), NOW).licence.plan == "trial"


def test_cc_license_json_and_sig_may_be_files_as_the_operators_export_them(key, tmp_path):
    """`export CC_LICENSE_JSON=…/trial_license.json` (a path) and a .sig file or its text."""
    pro = lic.make_pack(licence(plan="pro"), key)
    (tmp_path / "lic.json").write_text(json.dumps(pro["license"]))
    (tmp_path / "lic.sig").write_text(pro["signature"] + "\n")
    for sig in (str(tmp_path / "lic.sig"), pro["signature"]):
        s = load_settings(_env(key, tmp_path, CC_LICENSE_JSON=str(tmp_path / "lic.json"),
                                   CC_LICENSE_SIG=sig), now=NOW)
        assert (s.licence.plan, s.licence.ok) == ("pro", True)
        assert s.licence.source == f"CC_LICENSE_JSON={tmp_path / 'lic.json'}"
    s = load_settings(_env(key, tmp_path, CC_LICENSE_JSON=str(tmp_path / "missing.json"),
                               CC_LICENSE_SIG=pro["signature"]), now=NOW)
    assert s.licence.reason == "malformed" and "neither JSON nor a readable file" in s.licence.detail
    assert not s.licence.ok


def test_settings_broken_sources_are_states_not_crashes(key, tmp_path):
    s = load_settings(_env(key, tmp_path, CC_LICENSE_PACK=str(tmp_path / "nope")), now=NOW)
    assert s.licence.reason == "missing" and "cannot read" in s.licence.detail
    s = load_settings(_env(key, tmp_path, CC_LICENSE_PACK="{not json"), now=NOW)
    assert s.licence.reason == "malformed"
    s = load_settings(_env(key, tmp_path, CC_LICENSE_JSON="{}"), now=NOW)
    assert s.licence.reason == "malformed" and "CC_LICENSE_SIG" in s.licence.detail


def test_settings_bad_trusted_keys_name_the_variable_not_the_value():
    with pytest.raises(ConfigError, match="CCP_LICENSE_PUBKEY_B64: key 'k1'") as exc:
        load_settings({"CCP_LICENSE_PUBKEY_B64": "k1=c2VjcmV0"})
    assert "c2VjcmV0" not in str(exc.value)
