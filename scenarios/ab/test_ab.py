"""`ccp ab` end to end: real shim processes per arm and round, arms interleaved, and the toggle really
changed what the upstream received; the report holds the per-arm table and the paired ratios."""
import json
import subprocess
import sys
from itertools import groupby
from pathlib import Path

import pytest

from harness.ab import auth_style
from harness.shim import PROJECT_ROOT, clean_env

pytestmark = pytest.mark.ab


def _ab(tmp_path: Path, args: list[str], extra_env: dict | None = None):
    env = clean_env({"CCP_LOGS_DIR": str(tmp_path / "logs"), "CCP_RESULTS_DIR": str(tmp_path / "results"),
                     **(extra_env or {})})
    return subprocess.run([sys.executable, "-m", "proxy", "ab", "--run", "AB-ci", *args], env=env,
                          cwd=PROJECT_ROOT, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=180)


def _arm_records(tmp_path: Path) -> dict[str, list[dict]]:
    """The usage records of every arm folder (results/runs/ab/AB-ci/rNN-X), read independently of
    the report; the daily logs folder (CCP_LOGS_DIR) is never written."""
    out: dict[str, list[dict]] = {}
    assert not (tmp_path / "logs").exists()
    for folder in sorted((tmp_path / "results" / "runs" / "ab" / "AB-ci").iterdir()):
        lines = (folder / "usage.jsonl").read_text().splitlines()
        out[folder.name] = [json.loads(line) for line in lines if line]
    return out


def test_header_mode_arms_reach_the_zai_upstream_with_their_own_header(tmp_path, mock_anthropic, mock_zai,
                                                                       keys):
    """The shims use this test's own mocks (ALLOW_REAL_API path), so what zai received is seen here."""
    env = {"ALLOW_REAL_API": "1", "ZAI_API_KEY": keys["ZAI_API_KEY"],
           "ANTHROPIC_AUTH_TOKEN": keys["ANTHROPIC_AUTH_TOKEN"],
           "CCP_ANTHROPIC_BASE_URL": mock_anthropic.base_url, "CCP_ZAI_BASE_URL": mock_zai.zai_base_url}
    out = _ab(tmp_path, ["--toggle", "header-mode", "--rounds", "3", "--repeat", "1", "--kinds", "http,curl"],
              env)
    assert out.returncode == 0, out.stdout + out.stderr

    # zai calls in order: per arm and round 1 warm-up + (http, curl) × (non-stream, stream) = 5 haiku
    styles = [auth_style(c.headers) for c in mock_zai.calls]
    blocks = [(style, len(list(group))) for style, group in groupby(styles)]
    assert blocks == [("x-api-key", 5), ("authorization", 5)] * 3
    for call in mock_zai.calls:
        assert keys["ZAI_API_KEY"] in (call.headers.get("x-api-key"),
                                       call.headers.get("authorization", "").removeprefix("Bearer "))
    assert not any(keys["ZAI_API_KEY"] in json.dumps(c.headers) for c in mock_anthropic.calls)
    assert len(mock_anthropic.calls) == 5 * 6

    report = json.loads((tmp_path / "results" / "AB-ci.json").read_text())
    assert report["executed"] == [[1, "A"], [1, "B"], [2, "A"], [2, "B"], [3, "A"], [3, "B"]]
    assert len({run["pid"] for run in report["arm_runs"]}) == 6  # a fresh shim per arm and round
    assert report["upstream_kind"] == "env" and report["upstream_seen"] == {}
    for arm in ("A", "B"):
        stats = report["arms"][arm]["stats"]
        assert stats["probes"] == stats["ok"] == 8 * 3 and stats["errors"] == {}
        assert stats["latency_ms"]["p50"] > 0 and stats["ttfb_ms"]["p95"] >= stats["ttfb_ms"]["p50"]
    assert report["record_differences"]["header_mode"] == {"A": ["x-api-key", None],
                                                           "B": ["authorization", None]}
    for key in ("latency_p50", "ttfb_p50", "client_p50"):
        ratio = report["ratios"][key]
        assert ratio["n"] == 3 and ratio["min"] <= ratio["median"] <= ratio["max"]
        assert ratio["q25"] <= ratio["median"] <= ratio["q75"]

    page = (tmp_path / "results" / "AB-ci.md").read_text()
    assert page.startswith("# A/B header-mode: ZAI_HEADER_MODE A=x-api-key vs B=authorization")
    assert "| A | `ZAI_HEADER_MODE=x-api-key` | 24 | 24 | none |" in page
    assert "| B | `ZAI_HEADER_MODE=authorization` | 24 | 24 | none |" in page
    assert "| p50 latency | " in page and "| p50 TTFB | " in page
    assert "not absolute figures" in page
    assert "Run order: A1 B1 A2 B2 A3 B3" in page
    assert "— ab AB-ci" in (tmp_path / "results" / "TESTS.md").read_text()


def test_h1h2_arms_negotiate_h2_then_http1_with_the_tls_mock(tmp_path):
    out = _ab(tmp_path, ["--toggle", "h1h2", "--rounds", "3", "--repeat", "1", "--kinds", "http"])
    assert out.returncode == 0, out.stdout + out.stderr
    assert "PASS toggle_effect" in out.stdout
    records = _arm_records(tmp_path)
    assert list(records) == ["r01-A", "r01-B", "r02-A", "r02-B", "r03-A", "r03-B"]
    for folder, recs in records.items():
        assert len(recs) == 6  # 2 warm-ups + haiku/sonnet × non-stream/stream
        assert {r["h2"] for r in recs} == ({True} if folder.endswith("A") else {False})
        assert {r["status"] for r in recs} == {200}
    report = json.loads((tmp_path / "results" / "AB-ci.json").read_text())
    assert report["upstream_kind"] == "tls"
    assert report["upstream_seen"]["A"]["http_version"] == {"2": 18}
    assert report["upstream_seen"]["B"]["http_version"] == {"1.1": 18}
    assert report["arms"]["A"]["stats"]["h2_share"] == 1.0 and report["arms"]["B"]["stats"]["h2_share"] == 0.0
    page = (tmp_path / "results" / "AB-ci.md").read_text()
    assert "| A | `CCP_HTTP2=1` | 12 | 12 | none |" in page and "`h2` A=[True] B=[False]" in page


def test_any_env_toggle_runs_the_same_way(tmp_path):
    out = _ab(tmp_path, ["--toggle", "FORCE_HAIKU_TO_ZAI=1,0", "--rounds", "3", "--repeat", "1",
                         "--kinds", "curl", "--warmup", "0"])
    assert out.returncode == 0, out.stdout + out.stderr
    for folder, recs in _arm_records(tmp_path).items():
        haiku_lanes = {r["lane"] for r in recs if "haiku" in r["model"]}
        assert haiku_lanes == ({"zai"} if folder.endswith("A") else {"anthropic"})
    report = json.loads((tmp_path / "results" / "AB-ci.json").read_text())
    assert report["record_differences"]["lane"] == {"A": ["anthropic", "zai"], "B": ["anthropic"]}
    assert report["upstream_seen"]["B"]["zai_auth"] == {}  # nothing went to zai in arm B
    assert [g["name"] for g in report["gates"]] == ["arms_interleaved", "one_record_per_probe",
                                                   "arms_measured"]


def test_a_broken_arm_fails_the_run(tmp_path):
    """Arm B caps request bodies at 10 bytes: every probe is refused (413), and the run says so."""
    out = _ab(tmp_path, ["--toggle", "CCP_MAX_BODY_BYTES=32MB,10", "--rounds", "3", "--repeat", "1",
                         "--kinds", "http", "--warmup", "0"])
    assert out.returncode == 1, out.stdout + out.stderr
    assert "FAIL arms_measured: no successful probe in B1, B2, B3" in out.stdout
    report = json.loads((tmp_path / "results" / "AB-ci.json").read_text())
    assert report["arms"]["A"]["stats"]["errors"] == {}
    assert report["arms"]["B"]["stats"]["ok"] == 0
    assert sum(report["arms"]["B"]["stats"]["errors"].values()) == 12
    assert report["ratios"]["latency_p50"]["n"] == 0  # no ratio is made up from nothing
    assert "| p50 latency | – | – | – | – |" in (tmp_path / "results" / "AB-ci.md").read_text()
    assert "**FAIL**" in (tmp_path / "results" / "TESTS.md").read_text()
