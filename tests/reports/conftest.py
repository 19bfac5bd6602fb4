"""Shared small usage data for the report tests: `report_records` and `report_sample` fixtures,
and `claude --version` answered without running the CLI (it takes seconds; harness tests cover it)."""
import pytest

from reports.summarize import summarize
from reports.usage_io import to_frame


def make_records(n: int = 12) -> list[dict]:
    out = []
    for i in range(n):
        zai = i % 2 == 1
        stream = i % 3 != 0
        out.append({
            "ts": f"2026-11-25T13:{i:02d}:00.000Z", "rid": f"r{i}", "lane": "zai" if zai else "anthropic",
            "provider": "zai" if zai else "anthropic", "decision": "to_zai" if zai else "to_anth",
            "op": "stream" if stream else "nonstream", "status": 502 if i % 5 == 4 else 200,
            "err_type": "upstream_5xx" if i % 5 == 4 else None, "model": "claude-sonnet-4-5",
            "latency_ms": 10.0 * (i + 1), "ttfb_ms": float(i + 1),
            "sse": {"events": 5, "bytes": 100 + i, "duration_ms": 12.0, "complete": True} if stream else None,
        })
    return out


def make_sample():
    """(metrics with a run section and gates, DataFrame)."""
    df = to_frame(make_records())
    metrics = summarize(df, generated_at="2026-11-25T14:00:00Z")
    metrics["run"] = {"name": "repro", "started_at": "2026-11-25T13:00:00Z", "upstreams": "mock",
                      "gates": [{"name": "no_haiku_on_anthropic", "ok": True, "detail": "3 checked"},
                                {"name": "streams_accounted", "ok": False, "detail": "1/8 <bad> r7"}]}
    metrics["licence"] = {"ok": True, "plan": "team", "features": ["zai_offload"]}
    return metrics, df


@pytest.fixture
def report_records():
    return make_records


@pytest.fixture
def report_sample():
    return make_sample()


@pytest.fixture(autouse=True)
def _no_cli_probe(monkeypatch):
    monkeypatch.setattr("reports.context.claude_version", lambda binary=None: "9.9.9 (test CLI)")
