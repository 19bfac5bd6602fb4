"""The run context the HTML report shows: toggles, versions, licence state and quotas.

`run_context(run, settings, versions)` is pure: toggles and versions come from a METRICS "run"
block when the report was given one (what the run itself recorded), else from `Settings` and the
versions found now; licence and quotas always come from `Settings` (the state at report time),
and each table says where it came from. `current_versions()` is the one function here that looks
outside (package metadata and `claude --version`).
"""
from __future__ import annotations

import sys
import time
from importlib.metadata import PackageNotFoundError, version

from harness.cli_probe import claude_version
from proxy.config.settings import Settings

# The toggles harness.repro records in a run block (tests/reports/test_context.py keeps them equal),
# and the Settings field each one sets.
TOGGLES = {"FORCE_HAIKU_TO_ZAI": "force_haiku_to_zai", "OFFLOAD_PAUSED": "offload_paused",
           "ZAI_HEADER_MODE": "zai_header_mode", "MITM_FILTER_CHAIN": "mitm_filter_chain",
           "MITM_FORCE_H1": "force_h1", "ENABLE_BODY_TEE": "body_tee"}
DEFAULT = "(default)"


def current_versions() -> dict:
    """ccp (package metadata), Python and the claude CLI (None when it cannot be run)."""
    try:
        ccp = version("ccp")
    except PackageNotFoundError:
        ccp = "unknown"
    return {"ccp": ccp, "python": sys.version.split()[0], "claude": claude_version()}


def _text(value) -> str:
    if value is None:
        return DEFAULT
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def _rows(mapping: dict, none: str = "–") -> list[tuple[str, str]]:
    return [(str(k), none if v is None else _text(v)) for k, v in mapping.items()]


def _licence(settings: Settings) -> list[tuple[str, str]]:
    state = settings.licence._asdict()  # a verdict: never a key or a signature
    if state.get("expires_at"):
        state["expires_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(state["expires_at"]))
    state["features"] = ", ".join(state.get("features") or ()) or None
    rows = _rows({k: v for k, v in state.items() if v not in (None, "")})
    return [("CCP_LICENSE_ENFORCE", _text(settings.licence_enforce)), *rows]


def _quotas(settings: Settings) -> dict:
    public = settings.quotas.public()
    rules = []
    for q in public["quotas"]:
        rolling, weekly = q.get("rolling"), q.get("weekly")
        rules.append({
            "pattern": q["pattern"], "lane": q.get("lane") or "any",
            "rolling": f"{rolling['tokens']} tokens / {rolling['window_s']:g} s" if rolling else "–",
            "weekly": f"{weekly['tokens']} tokens / {weekly['window_s']:g} s" if weekly else "–",
            "warn_pct": q.get("warn_pct"), "fallback_lane": q.get("fallback_lane")})
    return {"file": settings.quotas_file or "none", "source": public["source"] or "none",
            "reroute_mode": settings.reroute_mode, "rules": rules}


def run_context(run: dict | None, settings: Settings, versions: dict | None) -> dict:
    """Toggles, versions, licence and quotas as the report shows them. Pure.

    `run` is a METRICS "run" block or None; `versions` is what `current_versions()` returned
    (unused when the run block carries its own)."""
    run = run if isinstance(run, dict) else {}
    recorded = run.get("toggles") if isinstance(run.get("toggles"), dict) else None
    if recorded is not None:
        toggles = [(k, _text(recorded.get(k))) for k in TOGGLES]
        toggles += [(str(k), _text(v)) for k, v in recorded.items() if k not in TOGGLES]
        toggles_from = f"recorded by run {run.get('name', '?')}"
    else:
        toggles = [(k, _text(getattr(settings, attr))) for k, attr in TOGGLES.items()]
        toggles_from = "this environment, at report time"
    run_versions = run.get("versions") if isinstance(run.get("versions"), dict) else None
    shown = run_versions if run_versions is not None else (versions or {})
    return {
        "run": [(k, str(run[k])) for k in ("name", "started_at", "upstreams", "front") if k in run],
        "toggles": toggles, "toggles_from": toggles_from,
        "versions": [(k, "not found" if v is None else str(v)) for k, v in shown.items()],
        "versions_from": f"recorded by run {run.get('name', '?')}" if run_versions is not None
        else "found at report time",
        "licence": _licence(settings),
        "quotas": _quotas(settings),
    }
