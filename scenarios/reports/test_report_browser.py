"""The HTML report in a real headless browser: it renders (a non-trivial screenshot) and logs no
console errors. Skipped when chromium is not installed."""
import json
import shutil
import subprocess

import pytest

from reports.html import render_report
from reports.summarize import summarize
from reports.usage_io import to_frame

pytestmark = pytest.mark.repro

MIN_PNG_BYTES = 10_000  # a blank 1200x2000 page compresses to far less


def _report(path):
    records = [{"ts": f"2026-11-25T13:{i:02d}:00.000Z", "rid": f"r{i}",
                "lane": "zai" if i % 2 else "anthropic", "decision": "to_zai" if i % 2 else "to_anth",
                "op": "stream" if i % 3 else "nonstream", "status": 200 if i % 5 else 502,
                "err_type": None if i % 5 else "upstream_5xx", "latency_ms": 10.0 * i, "ttfb_ms": float(i),
                "sse": {"events": 4, "bytes": 200, "duration_ms": 9.0, "complete": True} if i % 3 else None}
               for i in range(20)]
    df = to_frame(records)
    metrics = summarize(df)
    metrics["run"] = {"name": "browser", "gates": [{"name": "g_ok", "ok": True, "detail": "ok"},
                                                   {"name": "g_bad", "ok": False, "detail": "bad"}]}
    path.write_text(render_report(metrics, df, "browser check"), encoding="utf-8")
    json.loads(json.dumps(metrics))  # METRICS stay plain JSON
    return path


def test_report_renders_in_headless_chromium(tmp_path):
    chromium = shutil.which("chromium")
    if not chromium:
        pytest.skip("chromium not installed: apt-get install chromium")
    report = _report(tmp_path / "report.html")
    shot = tmp_path / "shot.png"
    cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run",
           f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1200,2000",
           "--enable-logging=stderr", "--v=0", f"file://{report}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    output = proc.stdout + proc.stderr
    assert shot.is_file(), f"no screenshot (exit {proc.returncode}):\n{output[-2000:]}"
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > MIN_PNG_BYTES
    bad = [line for line in output.splitlines() if "Uncaught" in line or "ERROR:CONSOLE" in line]
    assert not bad, "\n".join(bad)
