"""reports.context: toggles, versions, licence and quotas for the report's run-context section."""
import dataclasses

import pytest

from proxy.config.load import load_settings
from proxy.licence.verify import LicenceState
from reports.context import TOGGLES, current_versions, run_context

pytestmark = pytest.mark.quick

VERSIONS = {"ccp": "0.1.0", "python": "3.11.7", "claude": None}


def test_toggles_are_the_ones_repro_records():
    from harness.repro import TOGGLES as REPRO_TOGGLES
    assert tuple(TOGGLES) == REPRO_TOGGLES


def test_from_the_environment_when_there_is_no_run_block():
    settings = load_settings({"FORCE_HAIKU_TO_ZAI": "0", "OFFLOAD_PAUSED": "1",
                                  "ZAI_HEADER_MODE": "authorization", "ENABLE_BODY_TEE": "1"})
    ctx = run_context(None, settings, VERSIONS)
    assert dict(ctx["toggles"]) == {"FORCE_HAIKU_TO_ZAI": "0", "OFFLOAD_PAUSED": "1",
                                    "ZAI_HEADER_MODE": "authorization", "MITM_FILTER_CHAIN": "1",
                                    "MITM_FORCE_H1": "0", "ENABLE_BODY_TEE": "1"}
    assert ctx["toggles_from"] == "this environment, at report time"
    assert dict(ctx["versions"]) == {"ccp": "0.1.0", "python": "3.11.7", "claude": "not found"}
    assert ctx["run"] == []
    assert ("reason", "missing") in ctx["licence"] and ("ok", "0") in ctx["licence"]
    assert ctx["quotas"]["rules"] == [] and ctx["quotas"]["file"] == "none"


def test_a_run_block_gives_toggles_and_versions():
    run = {"name": "repro", "started_at": "2026-11-25T13:00:00.000Z", "upstreams": "mock",
           "toggles": {"FORCE_HAIKU_TO_ZAI": None, "OFFLOAD_PAUSED": "1", "SOAK_PROBE": "curl"},
           "versions": {"ccp": "0.0.9", "claude": "2.1.331 (Claude Code)", "python": "3.11.7"}}
    ctx = run_context(run, load_settings({"OFFLOAD_PAUSED": "0"}), VERSIONS)
    toggles = dict(ctx["toggles"])
    assert toggles["OFFLOAD_PAUSED"] == "1" and toggles["FORCE_HAIKU_TO_ZAI"] == "(default)"
    assert toggles["SOAK_PROBE"] == "curl" and ctx["toggles_from"] == "recorded by run repro"
    assert dict(ctx["versions"])["claude"] == "2.1.331 (Claude Code)"
    assert ctx["versions_from"] == "recorded by run repro"
    assert ("name", "repro") in ctx["run"] and ("upstreams", "mock") in ctx["run"]


def test_licence_state_and_quotas(tmp_path):
    quotas = tmp_path / "quotas.yaml"
    quotas.write_text("quotas:\n  haiku:\n    weekly: {tokens: 5000}\n"
                      "    rolling: {tokens: 100, window: 5h}\n")
    settings = load_settings({"CCP_QUOTAS_FILE": str(quotas), "CCP_LICENSE_ENFORCE": "1"})
    settings = dataclasses.replace(settings, licence=LicenceState(
        ok=True, plan="team", kid="k1", features=("zai_offload",), expires_at=1_800_000_000,
        reason=None, id="lic-1", subject="acme", source="CC_LICENSE_PACK"))
    ctx = run_context(None, settings, VERSIONS)
    licence = dict(ctx["licence"])
    assert licence["CCP_LICENSE_ENFORCE"] == "1" and licence["ok"] == "1"
    assert licence["plan"] == "team" and licence["features"] == "zai_offload"
    assert licence["expires_at"] == "2027-01-15T08:00:00Z" and "reason" not in licence
    q = ctx["quotas"]
    assert q["file"] == str(quotas) and q["reroute_mode"] == "block"
    assert q["rules"] == [{"pattern": "haiku", "lane": "any", "rolling": "100 tokens / 18000 s",
                           "weekly": "5000 tokens / 604800 s", "warn_pct": 80.0,
                           "fallback_lane": "anthropic"}]


def test_current_versions_uses_package_metadata_and_the_cli_probe():
    v = current_versions()
    assert v["claude"] == "9.9.9 (test CLI)"  # tests/reports/conftest.py answers for the CLI
    assert v["ccp"] != "unknown" and v["python"].count(".") == 2
