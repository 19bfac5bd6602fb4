import asyncio
import json

import pytest

from harness.ab import (
    PRESETS,
    AsgiUpstream,
    Toggle,
    arm_order,
    arm_stats,
    auth_style,
    error_type,
    is_interleaved,
    main,
    paired_ratios,
    parse_toggle,
    per_round_p50,
    probe_plan,
    record_differences,
    render_markdown,
    toggle_effect,
)
from harness.probes import text_from_sse

pytestmark = pytest.mark.quick


def test_parse_toggle_presets_and_any_env():
    assert parse_toggle("h1h2") == Toggle("h1h2", "CCP_HTTP2", "1", "0")
    assert parse_toggle("header-mode") == Toggle("header-mode", "ZAI_HEADER_MODE", "x-api-key",
                                                 "authorization")
    t = parse_toggle(" CCP_UPSTREAM_CLIENT=httpx, aiohttp ")
    assert t == Toggle("CCP_UPSTREAM_CLIENT", "CCP_UPSTREAM_CLIENT", "httpx", "aiohttp")
    assert (t.value("A"), t.value("B")) == ("httpx", "aiohttp")
    assert set(PRESETS) == {"h1h2", "header-mode"}


@pytest.mark.parametrize("spec, message", [
    ("h2", "expected h1h2, header-mode or NAME=a,b"),
    ("1BAD=a,b", "not an environment variable name"),
    ("X=a", "exactly two values"),
    ("X=a,b,c", "exactly two values"),
    ("X=a,a", "the same"),
])
def test_parse_toggle_rejects(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_toggle(spec)


def test_arms_alternate_and_the_check_catches_anything_else():
    order = arm_order(3)
    assert order == [(1, "A"), (1, "B"), (2, "A"), (2, "B"), (3, "A"), (3, "B")]
    assert is_interleaved(order)
    assert not is_interleaved([(1, "A"), (2, "A"), (1, "B"), (2, "B")])  # AABB
    assert not is_interleaved([(1, "A"), (1, "B"), (2, "A")])  # a round without B
    assert not is_interleaved([(1, "B"), (1, "A")])
    assert not is_interleaved([])
    with pytest.raises(ValueError):
        arm_order(0)


def test_probe_plan_is_the_same_set_with_warmups_first():
    items = probe_plan(("http", "curl", "cli"), repeat=2, haiku="h", sonnet="s", warmup=1)
    warm = [i for i in items if i.warmup]
    assert [(i.kind, i.family, i.stream) for i in warm] == [("http", "haiku", False),
                                                            ("http", "sonnet", False)]
    measured = [i for i in items if not i.warmup]
    # per repeat: http and curl × 2 models × 2 ops, cli × 2 models (stream only)
    assert len(measured) == 2 * (4 + 4 + 2)
    assert {i.model for i in measured if i.kind == "cli"} == {"haiku", "sonnet"}
    assert all(i.stream for i in measured if i.kind == "cli")
    assert {i.model for i in measured if i.kind == "http"} == {"h", "s"}
    assert probe_plan(("http",), 1, warmup=0)[0].warmup is False


def _row(arm, rnd, latency, ttfb=1.0, ok=True, err=None, warmup=False, h2=None, client=5.0):
    return {"arm": arm, "round": rnd, "ok": ok, "error_type": err, "warmup": warmup,
            "latency_ms": latency, "ttfb_ms": ttfb, "client_ms": client, "h2": h2, "has_record": True}


def test_arm_stats_counts_errors_by_type_and_leaves_warmups_out():
    rows = [_row("A", 1, v) for v in (1.0, 2.0, 3.0, 4.0, 5.0)]
    rows += [_row("A", 1, 999.0, warmup=True), _row("A", 1, None, ok=False, err="upstream_5xx"),
             _row("A", 1, None, ok=False, err="upstream_5xx"), _row("A", 1, None, ok=False, err="no_record")]
    stats = arm_stats(rows)
    assert stats["probes"] == 8 and stats["ok"] == 5
    assert stats["errors"] == {"no_record": 1, "upstream_5xx": 2}
    assert stats["latency_ms"] == {"n": 5, "p50": 3.0, "p95": 4.8}
    assert stats["h2_share"] is None
    assert arm_stats([_row("B", 1, 1.0, h2=True), _row("B", 1, 1.0, h2=False)])["h2_share"] == 0.5
    assert arm_stats([])["latency_ms"] == {"n": 0, "p50": None, "p95": None}


def test_ratios_are_paired_per_round_with_their_spread():
    rows = [_row("A", r, 10.0) for r in (1, 2, 3, 4)]
    rows += [_row("B", 1, 11.0), _row("B", 2, 9.0), _row("B", 3, 12.0), _row("B", 4, 10.0),
             _row("B", 4, 500.0, warmup=True), _row("B", 3, None, ok=False)]
    a, b = per_round_p50(rows, "A", "latency_ms", 4), per_round_p50(rows, "B", "latency_ms", 4)
    assert a == [10.0] * 4 and b == [11.0, 9.0, 12.0, 10.0]
    r = paired_ratios(a, b)
    assert r["ratios"] == [1.1, 0.9, 1.2, 1.0] and r["n"] == 4
    assert r["median"] == pytest.approx(1.05) and r["min"] == 0.9 and r["max"] == 1.2
    assert r["q25"] == pytest.approx(0.975) and r["q75"] == pytest.approx(1.125)
    assert r["b_above_a"] == 2
    # rounds missing on either side (or with A = 0) are left out, not guessed
    assert paired_ratios([None, 0.0, 2.0], [1.0, 1.0, 3.0])["ratios"] == [1.5]
    assert paired_ratios([None], [None])["median"] is None


def test_error_type_prefers_the_record():
    assert error_type(True, 200, {"err_type": None}) is None
    assert error_type(False, 502, {"err_type": "net"}) == "net"
    assert error_type(False, None, None) == "no_record"
    assert error_type(False, 500, None) == "no_record_status_500"
    assert error_type(False, 503, {"err_type": None}) == "status_503"
    assert error_type(False, 200, {"err_type": None}) == "bad_answer"


def test_auth_style():
    assert auth_style({"x-api-key": "k"}) == "x-api-key"
    assert auth_style({"authorization": "Bearer k"}) == "authorization"
    assert auth_style({"authorization": "Bearer k", "x-api-key": "k"}) == "both"
    assert auth_style({"authorization": "Basic k"}) == "none" and auth_style({}) == "none"


def _calls(lane, version, auth, n=2):
    return [{"lane": lane, "http_version": version, "auth": auth}] * n


def test_toggle_effect_for_h1h2_needs_tls():
    t = PRESETS["h1h2"]
    good = {"A": _calls("anthropic", "2", "x-api-key"), "B": _calls("anthropic", "1.1", "x-api-key")}
    assert toggle_effect(t, good, tls=True).ok
    same = {"A": _calls("anthropic", "1.1", "none"), "B": _calls("anthropic", "1.1", "none")}
    result = toggle_effect(t, same, tls=True)
    assert not result.ok and "upstream saw 1.1 (expected 2)" in result.detail
    assert toggle_effect(t, same, tls=False) is None
    mixed = {"A": _calls("anthropic", "2", "none") + _calls("zai", "1.1", "none"), "B": good["B"]}
    assert not toggle_effect(t, mixed, tls=True).ok


def test_toggle_effect_for_header_mode_looks_at_the_zai_lane_only():
    t = PRESETS["header-mode"]
    seen = {"A": _calls("zai", "1.1", "x-api-key") + _calls("anthropic", "1.1", "authorization"),
            "B": _calls("zai", "1.1", "authorization") + _calls("anthropic", "1.1", "x-api-key")}
    assert toggle_effect(t, seen, tls=False).ok
    swapped = {"A": seen["B"], "B": seen["A"]}
    assert not toggle_effect(t, swapped, tls=False).ok
    assert toggle_effect(parse_toggle("X=1,2"), seen, tls=False) is None
    assert toggle_effect(t, {"A": seen["A"], "B": []}, tls=False) is None


def test_record_differences_name_the_fields_that_changed():
    rows = [{"arm": "A", "has_record": True, "lane": "zai", "decision": "to_zai", "h2": False},
            {"arm": "B", "has_record": True, "lane": "anthropic", "decision": "to_anth", "h2": False},
            {"arm": "B", "has_record": False, "lane": None}]
    diffs = record_differences(rows)
    assert set(diffs) == {"lane", "decision"}
    assert diffs["lane"] == {"A": ["zai"], "B": ["anthropic"]}


def _report():
    rounds = [{"round": i, "A": {"latency_p50": 2.0, "ttfb_p50": 1.0, "client_p50": 5.0},
               "B": {"latency_p50": 2.2, "ttfb_p50": 1.0, "client_p50": 5.0},
               "latency_ratio": 1.1, "ttfb_ratio": 1.0} for i in (1, 2, 3)]
    stats = arm_stats([_row("A", 1, 2.0)])
    ratio = paired_ratios([2.0] * 3, [2.2] * 3)
    return {"toggle": PRESETS["h1h2"]._asdict(), "started_at": "T", "rounds": 3,
            "probes_per_arm_round": 10, "kinds": ["http"], "repeat": 1, "warmup": 1,
            "upstreams": "built-in TLS mock", "arms": {"A": {"stats": stats}, "B": {"stats": stats}},
            "ratios": {"latency_p50": ratio, "ttfb_p50": paired_ratios([1.0] * 3, [1.0] * 3),
                       "client_p50": paired_ratios([], [])},
            "pooled_ratios": {"latency_p50": 1.1, "ttfb_p50": 1.0, "client_p50": None},
            "per_round": rounds, "upstream_seen": {"A": {"http_version": {"2": 9}, "zai_auth": {}},
                                                   "B": {"http_version": {"1.1": 9}}},
            "record_differences": {"h2": {"A": [True], "B": [False]}},
            "gates": [{"name": "arms_interleaved", "ok": True, "detail": "A1 B1"}],
            "executed": [[1, "A"], [1, "B"]], "logs_dir": "/l"}


def test_markdown_page_has_the_arm_table_the_ratios_and_no_absolute_claim():
    page = render_markdown(_report())
    assert page.startswith("# A/B h1h2: CCP_HTTP2 A=1 vs B=0")
    assert "| A | `CCP_HTTP2=1` | 1 | 1 | none | 2.00 |" in page
    assert "| p50 latency | 1.100 | 1.100–1.100 | 1.100–1.100 | 3/3 | 1.100 |" in page
    assert "| p50 client time | – | – | – | – | – |" in page
    assert "| 2 | 2.00 | 2.20 | 1.100 |" in page
    assert "not absolute figures" in page
    assert "upstream requests by HTTP version: 2 ×9" in page and "1.1 ×9" in page
    assert "`h2` A=[True] B=[False]" in page
    assert "Run order: A1 B1" in page


@pytest.mark.parametrize("argv, message", [
    (["--toggle", "h1h2", "--rounds", "2"], "--rounds must be >= 3"),
    (["--toggle", "nope"], "UsageError: --toggle"),
    (["--toggle", "h1h2", "--kinds", "ftp"], "UsageError: --kinds"),
    (["--toggle", "ZAI_HEADER_MODE=x-api-key,cookie"], "ConfigError: ZAI_HEADER_MODE"),
    (["--toggle", "h1h2", "--upstream", "env"], "--upstream env needs ALLOW_REAL_API=1"),
])
def test_usage_and_config_errors_exit_2_before_anything_starts(tmp_path, capsys, argv, message):
    assert main([*argv, "--logs", str(tmp_path / "l"), "--results", str(tmp_path / "r")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "r").exists() and not (tmp_path / "l").exists()


def _asgi(app, method, path, body=b"", headers=()):
    sent = []
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive():
        return messages.pop(0)

    async def send(msg):
        sent.append(msg)

    scope = {"type": "http", "method": method, "path": path, "http_version": "2",
             "headers": [(k.encode(), v.encode()) for k, v in headers]}
    asyncio.run(app(scope, receive, send))
    status = sent[0]["status"]
    return status, b"".join(m.get("body", b"") for m in sent[1:])


def test_asgi_upstream_answers_like_the_mock_and_records_calls():
    app = AsgiUpstream()
    assert _asgi(app, "HEAD", "/")[0] == 200 and app.calls == []
    body = {"model": "m", "max_tokens": 5, "messages": [
        {"role": "user", "content": "Reply with exactly: TOKEN_1 and nothing else."}]}
    status, raw = _asgi(app, "POST", "/v1/messages", json.dumps(body).encode(), [("x-api-key", "k")])
    assert status == 200 and json.loads(raw)["content"][0]["text"] == "TOKEN_1"
    status, raw = _asgi(app, "POST", "/api/anthropic/v1/messages",
                        json.dumps({**body, "stream": True}).encode(),
                        [("Authorization", "Bearer k")])
    assert status == 200 and text_from_sse(raw) == "TOKEN_1"
    assert [(c["lane"], c["http_version"], auth_style(c["headers"])) for c in app.calls] == [
        ("anthropic", "2", "x-api-key"), ("zai", "2", "authorization")]
