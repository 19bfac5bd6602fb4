"""The probe kinds by name."""
import pytest

from harness.cli_probe import cli_probe, curl_probe
from harness.probe_kinds import PROBES, probe
from harness.probes import http_probe, sdk_probe

pytestmark = pytest.mark.quick


def test_every_kind_is_its_function():
    assert PROBES == {"http": http_probe, "sdk": sdk_probe, "curl": curl_probe, "cli": cli_probe}


def test_unknown_kind():
    with pytest.raises(ValueError, match="unknown probe kind"):
        probe("carrier-pigeon", "http://127.0.0.1:9", "m")


def test_a_kind_gets_the_arguments(monkeypatch):
    seen = []
    monkeypatch.setitem(PROBES, "http", lambda *a, **kw: seen.append((a, kw)) or "result")
    assert probe("http", "http://127.0.0.1:9", "m", "hi", stream=True) == "result"
    assert seen == [(("http://127.0.0.1:9", "m", "hi"), {"stream": True})]
