import pytest

from proxy.cli import VERBS, main

pytestmark = pytest.mark.quick


def test_no_verb_is_a_usage_error(capsys):
    assert main([]) == 2
    assert "usage: ccp VERB" in capsys.readouterr().out


def test_help_is_ok(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(verb in out for verb in VERBS)


def test_config_error_is_exit_2(capsys, monkeypatch):
    monkeypatch.setenv("CCP_JSON_TIMEOUT", "soon")
    assert main(["summarize"]) == 2
    assert "ConfigError: CCP_JSON_TIMEOUT='soon'" in capsys.readouterr().err
