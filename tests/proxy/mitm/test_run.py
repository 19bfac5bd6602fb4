"""`ccp mitm`'s process side: the shell lines, the CA, the upstream trust, and the CLI's errors."""
from __future__ import annotations

from pathlib import Path

import certifi
import pytest

from proxy.cli.main import main as ccp_main
from proxy.config.load import load_settings
from proxy.config.settings import Settings
from proxy.mitm import run as mitm

pytestmark = pytest.mark.quick


def test_env_lines():
    lines = mitm.env_lines("127.0.0.1", 8082, "/home/op/.mitmproxy/mitmproxy-ca-cert.pem")
    assert lines == ["export HTTPS_PROXY=http://127.0.0.1:8082",
                     "export NODE_EXTRA_CA_CERTS=/home/op/.mitmproxy/mitmproxy-ca-cert.pem",
                     "unset ANTHROPIC_BASE_URL ANTHROPIC_AUTH_TOKEN"]
    assert mitm.env_lines("h", 1, "x", unset=True) == ["unset HTTPS_PROXY NODE_EXTRA_CA_CERTS"]
    quoted = mitm.env_lines("127.0.0.1", 8082, "/tmp/a b/ca.pem")[1]
    assert quoted == "export NODE_EXTRA_CA_CERTS='/tmp/a b/ca.pem'"


def test_ensure_ca_makes_it_once(tmp_path):
    ca = mitm.ensure_ca(tmp_path / "conf")
    assert ca == mitm.ca_cert_path(tmp_path / "conf") and ca.exists()
    first = ca.read_bytes()
    assert mitm.ensure_ca(tmp_path / "conf").read_bytes() == first  # kept, not replaced


def test_upstream_trust_adds_to_certifi(tmp_path):
    extra = tmp_path / "extra.pem"
    extra.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    assert mitm.upstream_trust(Settings(), tmp_path) is None  # mitmproxy's default: certifi
    bundle = Path(mitm.upstream_trust(Settings(ca_bundle=str(extra)), tmp_path))
    data = bundle.read_bytes()
    assert data.startswith(Path(certifi.where()).read_bytes()) and data.endswith(extra.read_bytes())


def test_settings_read_the_mitm_names(tmp_path):
    s = load_settings({"MITM_FILTER_CHAIN": "~d example.com", "MITM_FORCE_H1": "1",
                           "ENABLE_BODY_TEE": "1", "HOME": str(tmp_path)})
    assert (s.mitm_filter_chain, s.force_h1, s.body_tee) == ("~d example.com", True, True)
    assert s.mitm_confdir == str(tmp_path / ".mitmproxy")
    assert load_settings({"CCP_MITM_CONFDIR": "/x", "HOME": "/h"}).mitm_confdir == "/x"


def test_env_verb(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CCP_MITM_CONFDIR", str(tmp_path / "ca"))
    assert ccp_main(["mitm", "env", "--port", "9000"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "export HTTPS_PROXY=http://127.0.0.1:9000"
    assert (tmp_path / "ca" / "mitmproxy-ca-cert.pem").exists()


def test_bad_filter_chain_is_a_config_error(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("MITM_FILTER_CHAIN", "~q ((")
    monkeypatch.setenv("CCP_MITM_CONFDIR", str(tmp_path))
    assert ccp_main(["mitm", "--port", "0"]) == 2
    assert capsys.readouterr().err.startswith("ConfigError: MITM_FILTER_CHAIN")


def test_a_logs_folder_that_cannot_be_written_is_a_config_error(monkeypatch, capsys, tmp_path):
    pytest.importorskip("mitmproxy")
    blocker = tmp_path / "file"
    blocker.write_text("")  # a folder under a regular file: refused even to root
    monkeypatch.setenv("CCP_LOGS_DIR", str(blocker / "logs"))
    monkeypatch.setenv("CCP_MITM_CONFDIR", str(tmp_path / "confdir"))
    monkeypatch.setattr(mitm, "serve", lambda *a, **k: pytest.fail("it should not serve"))
    assert ccp_main(["mitm", "--port", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith(f"ConfigError: CCP_LOGS_DIR={blocker / 'logs'} cannot be written")
