import re

import pytest

from proxy.cli.main import VERBS, all_verbs, main, run_verb

pytestmark = pytest.mark.quick


def test_no_verb_is_a_usage_error(capsys):
    assert main([]) == 2
    assert "usage: ccp VERB" in capsys.readouterr().out


def test_help_is_ok(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(verb in out for verb in all_verbs())
    assert "probe" in out and "summarize" in out  # the harness's and the reports' verbs too


def test_the_harness_and_reports_verbs_come_from_entry_points_not_imports():
    verbs = all_verbs()
    assert verbs["repro"].target == "harness.repro:main"
    assert verbs["summarize"].target.startswith("reports.")
    assert set(VERBS).isdisjoint({"repro", "probe", "summarize", "bench"})


def test_config_error_is_exit_2(capsys, monkeypatch):
    monkeypatch.setenv("CCP_JSON_TIMEOUT", "soon")
    assert main(["summarize"]) == 2
    assert "ConfigError: CCP_JSON_TIMEOUT='soon'" in capsys.readouterr().err


# verbs that dispatch on their first word themselves (no argparse subparsers to walk)
SUB_VERBS = {"license": ["set", "status", "login", "issuer", "keygen"],
             "db": ["status", "export", "import", "merge"], "quotas": ["reload"], "mitm": ["env"],
             "providers": ["reload"], "set": ["zai-header-mode"], "trajectories": ["merge"]}


def test_every_option_of_every_verb_has_help_text(monkeypatch, capsys):
    """`ccp VERB --help` (and each sub-verb's) builds its parser; every argument must say what it is."""
    import argparse

    parsers: list[argparse.ArgumentParser] = []
    original = argparse.ArgumentParser.parse_known_args

    def recording(self, args=None, namespace=None):
        parsers.append(self)
        return original(self, args, namespace)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_known_args", recording)
    for verb, target in all_verbs().items():
        for argv in (["--help"], *[[sub, "--help"] for sub in SUB_VERBS.get(verb, [])]):
            with pytest.raises(SystemExit) as exc:
                run_verb(target, argv)
            assert exc.value.code == 0, (verb, argv)
    capsys.readouterr()
    missing, seen = [], set()
    while parsers:
        parser = parsers.pop()
        if id(parser) in seen:
            continue
        seen.add(id(parser))
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                parsers.extend(action.choices.values())
            elif not isinstance(action, argparse._HelpAction) and not action.help:
                missing.append(f"{parser.prog} {'/'.join(action.option_strings) or action.dest}")
    assert len(seen) > len(VERBS) and not missing, missing


def test_version(capsys):
    assert main(["--version"]) == 0
    assert re.match(r"^ccp \d+\.\d+", capsys.readouterr().out)


def test_a_closed_pipe_is_no_traceback(monkeypatch, capsys):
    import proxy.cli.main as cli

    def writes_into_a_closed_pipe(argv):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(cli, "run_verb", lambda verb, argv: writes_into_a_closed_pipe(argv))
    monkeypatch.setattr(cli, "_quiet_broken_pipe", lambda: 141)  # keep pytest's own stdout
    assert cli.main(["logs"]) == 141


def test_serve_loads_neither_the_plugin_verbs_nor_an_http_client_it_does_not_use():
    # `ccp serve` is the shim's process: the harness's verb table (and the httpx, click and rich
    # it would bring) cost it ~7 MB of resident memory for nothing
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from proxy.cli.main import main\n"
        "try:\n    main(['serve', '--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted({m.partition('.')[0] for m in sys.modules} & "
        "{'harness', 'reports', 'httpx', 'rich', 'click'}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"
