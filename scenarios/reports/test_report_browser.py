"""The HTML report in a real headless browser, end to end: `ccp report` over a logs folder, the
page opened in chromium (its rendered DOM must hold the gate table, with the failing gate and its
rid, and both drill-down tables with the right rows; its screenshot must be a real picture; the
console must stay clean), the screenshot kept as results/report.png, and `ccp bundle` carrying it.
Skipped when chromium is not installed (Debian package `chromium`)."""
import json
import shutil
import struct
import subprocess
import sys
import tarfile
from hashlib import sha256
from html.parser import HTMLParser

import pytest

from harness.shim import PROJECT_ROOT, clean_env

pytestmark = pytest.mark.reports

WINDOW = (1280, 2000)
MIN_PNG_BYTES = 30_000  # a blank 1280x2000 page compresses to far less
HAIKU = "claude-haiku-4-5-20251001"
KEPT_SHOT = PROJECT_ROOT / "results" / "report.png"  # where `make bundle` picks it up


def _records() -> list[dict]:
    out = []
    for i in range(30):
        lane = ("zai", "anthropic", "glm")[i % 3]
        stream = i % 2 == 0
        out.append({
            "ts": f"2026-11-25T13:{i:02d}:00.000Z", "rid": f"r{i:02d}", "model": "claude-sonnet-4-5",
            "lane": lane, "provider": lane, "decision": "to_zai" if lane == "zai" else "to_anth",
            "op": "stream" if stream else "nonstream", "status": 200, "err_type": None, "reason": None,
            "latency_ms": 20.0 + i * 7, "ttfb_ms": 2.0 + i, "partial": None,
            "sse": {"events": 6, "bytes": 300, "duration_ms": 15.0, "complete": True} if stream else None,
        })
    out[4].update(status=502, err_type="upstream_5xx", reason="upstream_status")
    out[10].update(err_type="client_abort", reason="client_closed", partial="logs/partials/r10.partial",
                   sse={"events": 2, "bytes": 40, "duration_ms": 3.0, "complete": False})
    out[17].update(status=429, err_type="rate_limited", reason="quota")
    out[29].update(latency_ms=9000.0)  # the slowest by far
    out[21].update(model=HAIKU, lane="anthropic", decision="to_anth")  # a haiku leak: a gate fails
    return out


class Tables(HTMLParser):
    """The text of every cell of every <table id=...> in a DOM: {id: [[cell, ...], ...]}."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self._id = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table" and attrs.get("id"):
            self._id = attrs["id"]
            self.tables[self._id] = []
        elif tag == "tr" and self._id:
            self.tables[self._id].append([])
        elif tag in ("td", "th") and self._id:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._id and self._cell is not None:
            self.tables[self._id][-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "table":
            self._id = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def _chromium(binary, profile, *args, timeout=120):
    cmd = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
           f"--window-size={WINDOW[0]},{WINDOW[1]}", "--enable-logging=stderr", "--v=0", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def _ccp(*args, env):
    return subprocess.run([sys.executable, "-m", "proxy", *args], capture_output=True, text=True,
                          timeout=120, env=env, cwd=PROJECT_ROOT, stdin=subprocess.DEVNULL)


def test_report_in_headless_chromium_and_its_screenshot_in_the_bundle(tmp_path):
    chromium = shutil.which("chromium")
    if not chromium:
        pytest.skip("chromium not installed: apt-get install -y chromium")
    logs, results = tmp_path / "logs", tmp_path / "results"
    logs.mkdir()
    (logs / "usage.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _records()))
    (logs / "usage.jsonl.1").write_text(json.dumps({**_records()[0], "rid": "rotated-old"}) + "\n")
    env = clean_env({"CCP_HOME": str(tmp_path), "CCP_LOGS_DIR": str(logs), "CCP_RESULTS_DIR": str(results)})
    done = _ccp("report", env=env)
    assert done.returncode == 0, done.stderr
    report = results / "report.html"
    assert report.is_file()

    dom = _chromium(chromium, tmp_path / "profile", "--dump-dom", report.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    parser = Tables()
    parser.feed(dom.stdout)
    tables = parser.tables
    assert {"source-files", "toggles", "versions", "licence", "quotas", "gate-table", "lanes",
            "slowest-table", "failures-table"} <= set(tables)
    gates = {row[0]: row[1:] for row in tables["gate-table"][1:]}
    assert gates["no_haiku_on_anthropic"][0] == "FAIL" and "r21" in gates["no_haiku_on_anthropic"][1]
    assert gates["one_record_per_rid"][0] == "PASS"
    slow = tables["slowest-table"]
    assert slow[0][:3] == ["#", "rid", "ts"] and slow[1][1] == "r29" and slow[1][7] == "9000.0"
    fails = {row[0]: row for row in tables["failures-table"][1:]}
    assert set(fails) == {"r04", "r10", "r17"}
    assert fails["r10"][2:4] == ["claude-sonnet-4-5", "anthropic"]
    assert fails["r10"][6:] == ["client_abort, incomplete stream", "client_closed",
                                "logs/partials/r10.partial"]
    assert fails["r04"][5:7] == ["502", "HTTP 502, upstream_5xx"]
    source = tables["source-files"]
    assert len(source) == 2 and source[1][0] == str(logs / "usage.jsonl") and source[1][1] == "30"
    assert "rotated-old" not in dom.stdout and "usage.jsonl.1" in dom.stdout  # named, not read

    shot = tmp_path / "report.png"
    run = _chromium(chromium, tmp_path / "profile", f"--screenshot={shot}", report.as_uri())
    output = run.stdout + run.stderr
    assert shot.is_file(), f"no screenshot (exit {run.returncode}):\n{output[-2000:]}"
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and struct.unpack(">II", data[16:24]) == WINDOW
    assert len(data) > MIN_PNG_BYTES
    bad = [line for line in (dom.stderr + output).splitlines() if "Uncaught" in line or "CONSOLE" in line]
    assert not bad, "\n".join(bad)

    # kept for `make bundle`, and carried by a bundle made now
    KEPT_SHOT.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shot, KEPT_SHOT)
    shutil.copyfile(shot, results / "report.png")
    done = _ccp("bundle", env=env)
    assert done.returncode == 0, done.stderr
    tgz = next((results / "bundles").glob("*.tgz"))
    with tarfile.open(tgz) as tar:
        folder = tgz.name.removesuffix(".tgz")
        manifest = json.load(tar.extractfile(f"{folder}/MANIFEST.json"))
        png = tar.extractfile(f"{folder}/results/report.png").read()
        rendered = tar.extractfile(f"{folder}/results/report.html").read().decode()
    assert png == data and manifest["files"]["results/report.png"]["sha256"] == sha256(data).hexdigest()
    assert 'id="failures-table"' in rendered and "bundle " in rendered
