"""reports.bundle: the reviewer bundle (manifest, secret scan, .tgz) and METRICS pruning."""
import hashlib
import json
import os
import tarfile

import pytest

from reports.bundle import main

pytestmark = pytest.mark.quick
# What soak (results/overnight), A/B, sandbox, bench and mutation runs leave under results/.
ARTIFACTS = ("overnight/soak-1-SOAK.md", "overnight/soak-1-SOAK.json", "overnight/METRICS_soak-1.json",
             "AB-h1h2-20261125T130000Z.md", "AB-h1h2-20261125T130000Z.json",
             "sandbox/hello-20261125T130000Z.json", "BENCH-20261125T130000Z.md",
             "BENCH-20261125T130000Z.json", "MUTATE-quick-20261125T130000Z.md",
             "MUTATE-quick-20261125T130000Z.json")


@pytest.fixture
def run_dirs(tmp_path, monkeypatch, report_records, report_sample):
    logs, results = tmp_path / "logs", tmp_path / "results"
    logs.mkdir()
    results.mkdir()
    (logs / "usage.jsonl").write_text("".join(json.dumps(r) + "\n" for r in report_records()))
    (results / "overnight").mkdir()
    (results / "overnight" / "soak-1-usage.jsonl").write_text(json.dumps(report_records(1)[0]) + "\n")
    metrics, _ = report_sample
    (results / "METRICS_repro.json").write_text(json.dumps(metrics))
    (results / "repro-SUMMARY.md").write_text("# summary\n")
    (results / "junit.xml").write_text("<testsuite/>\n")
    (results / "TESTS.md").write_text("# Test runs\n")
    (results / "report.png").write_bytes(b"\x89PNG fake screenshot")
    (results / "report.html").write_text("STALE REPORT")  # never copied: the bundle renders its own
    for rel in ARTIFACTS:
        (results / rel).parent.mkdir(parents=True, exist_ok=True)
        (results / rel).write_text(f"{rel}\n")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CCP_CONFIG_HOME", str(tmp_path / "home" / "ccp"))
    monkeypatch.setenv("CCP_LOGS_DIR", str(logs))
    monkeypatch.setenv("CCP_RESULTS_DIR", str(results))
    return logs, results


def _only(paths):
    paths = list(paths)
    assert len(paths) == 1, paths
    return paths[0]


def test_bundle_has_artifacts_and_right_checksums(run_dirs, monkeypatch):
    logs, results = run_dirs
    monkeypatch.setenv("ZAI_API_KEY", "zai-secret-value-1234567890")
    assert main([]) == 0
    bundles = results / "bundles"
    folder = _only(p for p in bundles.iterdir() if p.is_dir())
    tgz = _only(bundles.glob("*.tgz"))
    names = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    assert {"logs/usage.jsonl", "logs/overnight/soak-1-usage.jsonl", "results/METRICS_repro.json",
            "results/repro-SUMMARY.md", "results/junit.xml", "results/TESTS.md", "results/report.png",
            "results/report.html", "config.json", "MANIFEST.json",
            *(f"results/{rel}" for rel in ARTIFACTS)} <= names
    assert not [n for n in names if "bundles" in n]
    files = json.loads((folder / "MANIFEST.json").read_text())["files"]
    assert set(files) == names - {"MANIFEST.json"}
    for rel, entry in files.items():
        data = (folder / rel).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest() and entry["bytes"] == len(data)
    assert files["results/junit.xml"]["from"] == str(results / "junit.xml")
    assert files["results/report.html"]["from"] == "rendered by ccp bundle"
    config = (folder / "config.json").read_text()
    assert "zai-secret-value" not in config
    cfg = json.loads(config)
    assert {p["name"] for p in cfg["providers"]} >= {"anthropic", "zai"}
    assert cfg["settings"]["logs_dir"] == str(logs) and "zai_api_key" not in cfg["settings"]
    report = (folder / "results" / "report.html").read_text()
    stamp = folder.name.removeprefix("ccp-bundle-")
    assert "STALE" not in report and f"ccp report (bundle {stamp})" in report
    assert "computed by ccp report from the 12 records read" in report and "streams_accounted" in report
    assert str(logs / "usage.jsonl") in report
    with tarfile.open(tgz) as tar:
        assert f"{folder.name}/MANIFEST.json" in tar.getnames()


def test_planted_secret_fails_and_writes_no_tgz(run_dirs, monkeypatch, capsys):
    logs, results = run_dirs
    secret = "zai-planted-secret-abcdef123456"
    monkeypatch.setenv("ZAI_API_KEY", secret)
    with open(logs / "usage.jsonl", "a") as fh:
        fh.write(json.dumps({"rid": "leak", "note": secret}) + "\n")
    assert main([]) == 1
    bundles = results / "bundles"
    assert not list(bundles.glob("*.tgz"))
    assert not [p for p in bundles.iterdir() if p.is_dir()]
    err = capsys.readouterr().err
    assert "usage.jsonl" in err and secret not in err


def test_secret_in_a_soak_result_stops_the_bundle(run_dirs, monkeypatch, capsys):
    _, results = run_dirs
    secret = "anthropic-planted-secret-0123456789"
    monkeypatch.setenv("ANTHROPIC_API_KEY", secret)
    (results / "overnight" / "soak-1-SOAK.md").write_text(f"oops {secret}\n")
    assert main([]) == 1
    assert not list((results / "bundles").iterdir())
    assert "soak-1-SOAK.md" in capsys.readouterr().err


def test_without_a_logs_folder_the_report_is_built_from_the_newest_metrics(run_dirs):
    logs, results = run_dirs
    for f in logs.iterdir():
        f.unlink()
    logs.rmdir()
    assert main([]) == 0
    folder = _only(p for p in (results / "bundles").iterdir() if p.is_dir())
    report = (folder / "results" / "report.html").read_text()
    assert "Built from the METRICS file" in report and "METRICS_repro.json" in report


def test_prune_keeps_newest_n(run_dirs):
    _, results = run_dirs
    for i in range(7):
        p = results / f"METRICS_run{i}.json"
        p.write_text("{}")
        os.utime(p, (1_000_000 + i, 1_000_000 + i))
    assert main(["--prune", "3"]) == 0
    left = sorted(p.name for p in results.glob("METRICS*.json"))
    # METRICS_repro.json was written now: it is the newest
    assert left == ["METRICS_repro.json", "METRICS_run5.json", "METRICS_run6.json"]
    assert (results / "repro-SUMMARY.md").exists()
