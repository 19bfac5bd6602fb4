"""`ccp bundle`: the reviewer bundle — one timestamped folder and `.tgz` of a run's artifacts.

The bundle step is the one place the reports write files. Into `<out>/ccp-bundle-<UTC stamp>/` it
copies the usage logs (the logs folder's current and rotated files, and the usage copies runs left
under results/), every results file RESULT_PATTERNS names (METRICS, summaries, TESTS.md, soak, A/B,
sandbox and bench results, the last test run's junit XML, the browser screenshot of the report),
renders the report afresh (`reports.html.build_report`: never a stale copy) and writes the
effective config (providers view + non-secret Settings fields, never a secret value) and
MANIFEST.json (sha256, size and origin per file). It then scans every file for the configured
secrets (harness.gates.no_secret_in_files) and only then writes the `.tgz`; on a hit the folder
is deleted and the command exits 1 naming the file. `--prune N` keeps the newest N METRICS.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import shutil
import sys
import tarfile
import time
from pathlib import Path

from harness.gates import no_secret_in_files
from proxy.config.load import load_settings
from proxy.config.settings import Settings
from proxy.core.redact import Secret
from reports.html import DEFAULT_OUT, build_report
from reports.usage_io import usage_files

DEFAULT_BUNDLES = "bundles"  # under the results folder
# Under the results folder, copied to results/ in the bundle (sub-folders kept): METRICS and
# summaries (ccp repro / summarize), the run log (reports.results_log), the last `make test`
# junit XML, the report's browser screenshot (scenarios/reports), A/B (harness.ab), bench
# (harness.bench.report), mutation runs (harness.mutate), soak (harness.soak: results/overnight)
# and sandbox (harness.sandbox.e2e).
RESULT_PATTERNS = ("METRICS*.json", "*-SUMMARY.md", "TESTS.md", "junit*.xml", "report.png",
                   "AB-*.md", "AB-*.json", "BENCH-*.md", "BENCH-*.json",
                   "MUTATE-*.md", "MUTATE-*.json",
                   "overnight/*-SOAK.md", "overnight/*-SOAK.json", "overnight/METRICS_*.json",
                   "sandbox/*.json")
USAGE_COPIES = ("*-usage.jsonl", "overnight/*-usage.jsonl")  # copied to logs/ in the bundle
# Settings fields never written to config.json: secrets and derived objects shown elsewhere.
SKIP_FIELDS = frozenset({"catalog", "quotas", "licence", "licence_keys", "routing_from_env"})


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def effective_config(settings: Settings) -> dict:
    """The providers view plus every non-secret Settings field, JSON-ready. Pure."""
    from proxy.cli.providers import providers_view
    fields = {}
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        if f.name in SKIP_FIELDS or isinstance(value, Secret):
            continue
        fields[f.name] = value if isinstance(value, (str, int, float, bool, type(None))) else str(value)
    fields["licence"] = settings.licence._asdict()  # a verdict: never a key or a signature
    return {"providers": providers_view(settings), "settings": fields}


def manifest(folder: Path, origins: dict[str, str] | None = None) -> dict:
    """sha256, size and origin of every file under `folder` (relative POSIX paths, sorted)."""
    origins = origins or {}
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != "MANIFEST.json")
    out = {}
    for p in files:
        rel = p.relative_to(folder).as_posix()
        out[rel] = {"sha256": sha256(p), "bytes": p.stat().st_size, "from": origins.get(rel, "?")}
    return {"files": out}


def _newest_metrics(results: Path) -> Path | None:
    found = sorted(results.glob("METRICS*.json"), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def _matches(root: Path, patterns: tuple[str, ...]) -> list[Path]:
    found = {p for pattern in patterns for p in root.glob(pattern) if p.is_file()} if root.is_dir() else set()
    return sorted(found)


def _copy(files: list[Path], root: Path, dest: Path, origins: dict[str, str], folder: Path) -> None:
    """Copy each file to `dest` / its path relative to `root`, noting where it came from."""
    for f in files:
        target = dest / f.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, target)
        origins[target.relative_to(folder).as_posix()] = str(f)


def render_for_bundle(logs: Path, results: Path, settings: Settings, stamp: str) -> str:
    """The report as `ccp report` renders it now: from the logs folder's current log, or from the
    newest METRICS when there is no logs folder (the page says which)."""
    title = f"ccp report (bundle {stamp})"
    if logs.exists():
        return build_report([str(logs)], None, settings, title)
    newest = _newest_metrics(results)
    if newest:
        return build_report([str(logs)], str(newest), settings, title, logs_optional=True)
    return build_report([], None, settings, title)  # no records at all: the page says so


def collect(folder: Path, logs: Path, results: Path, settings: Settings) -> list[Path]:
    """Fill `folder` with the run's artifacts; return the files written."""
    folder.mkdir(parents=True)
    origins: dict[str, str] = {}
    logs_files = usage_files(logs) if logs.exists() else []
    _copy(logs_files, logs if logs.is_dir() else logs.parent, folder / "logs", origins, folder)
    _copy(_matches(results, USAGE_COPIES), results, folder / "logs", origins, folder)
    _copy(_matches(results, RESULT_PATTERNS), results, folder / "results", origins, folder)
    stamp = folder.name.removeprefix("ccp-bundle-")
    report = folder / "results" / DEFAULT_OUT
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(render_for_bundle(logs, results, settings, stamp), encoding="utf-8")
    origins[f"results/{DEFAULT_OUT}"] = "rendered by ccp bundle"
    (folder / "config.json").write_text(
        json.dumps(effective_config(settings), indent=2, default=str) + "\n", encoding="utf-8")
    origins["config.json"] = "written by ccp bundle (no secret values)"
    (folder / "MANIFEST.json").write_text(json.dumps(
        {"created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **manifest(folder, origins)},
        indent=2) + "\n", encoding="utf-8")
    return sorted(p for p in folder.rglob("*") if p.is_file())


def make_bundle(out: Path, logs: Path, results: Path, settings: Settings) -> tuple[int, Path | None]:
    """Build the bundle; (0, the .tgz) or (1, None) after a secret hit (folder deleted)."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    folder = out / f"ccp-bundle-{stamp}"
    n = 1
    while folder.exists() or folder.with_suffix(".tgz").exists():
        n += 1
        folder = out / f"ccp-bundle-{stamp}-{n}"
    files = collect(folder, logs, results, settings)
    verdict = no_secret_in_files(files, settings.secrets())
    if not verdict.ok:
        shutil.rmtree(folder, ignore_errors=True)
        print(f"SecretError: bundle not written: {verdict.detail}", file=sys.stderr)
        return 1, None
    tgz = out / f"{folder.name}.tgz"
    with tarfile.open(tgz, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    return 0, tgz


def prune_metrics(results: Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` METRICS*.json in `results` (by mtime); return the deleted."""
    found = sorted(results.glob("METRICS*.json"), key=lambda p: (p.stat().st_mtime, p.name),
                   reverse=True)
    doomed = found[max(keep, 0):]
    for p in doomed:
        p.unlink()
    return doomed


def main(argv: list[str] | None = None) -> int:
    """`ccp bundle [--out DIR] [--logs DIR] [--results DIR] [--prune N]`."""
    settings = load_settings()
    parser = argparse.ArgumentParser(prog="ccp bundle", description=__doc__.splitlines()[0])
    parser.add_argument("--logs", default=settings.logs_dir, help="logs folder (default %(default)s)")
    parser.add_argument("--results", default=settings.results_dir,
                        help="results folder (default %(default)s)")
    parser.add_argument("--out", help="where bundles go (default <results>/bundles)")
    parser.add_argument("--prune", type=int, metavar="N",
                        help="instead: keep only the newest N METRICS files in the results folder")
    args = parser.parse_args(argv)
    results = Path(args.results)
    if args.prune is not None:
        if args.prune < 0:
            print("UsageError: --prune N needs N >= 0", file=sys.stderr)
            return 2
        deleted = prune_metrics(results, args.prune) if results.is_dir() else []
        for p in deleted:
            print(f"deleted {p}")
        print(f"kept the newest {args.prune} METRICS file(s) in {results}")
        return 0
    out = Path(args.out) if args.out else results / DEFAULT_BUNDLES
    out.mkdir(parents=True, exist_ok=True)
    rc, tgz = make_bundle(out, Path(args.logs), results, settings)
    if tgz:
        print(f"wrote {tgz}")
    return rc
