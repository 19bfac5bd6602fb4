"""The quotas file as configuration (proxy.config.quotas): parsing, matching, loading, spans and
the reroute modes. The book that counts against it is proxy.sinks.quotas (tests/proxy/sinks)."""
import pytest

from proxy.config.quotas import (
    DEFAULT_WEEK,
    Quota,
    QuotaError,
    book_span,
    load_quotas,
    parse_quotas,
    parse_reroute_mode,
    parse_span,
)

pytestmark = pytest.mark.quick

H = 3600.0
CONFIG = {"quotas": {
    "claude-haiku-4-5": {"rolling": {"window": "1h", "tokens": 500}},
    "haiku": {"rolling": {"window": "5h", "tokens": 1000}, "weekly": {"tokens": 5000},
              "warn_pct": 80, "cooldown": "10m"},
    "claude-sonnet-*": {"weekly": {"window": "7d", "tokens": 100}, "lane": "anthropic"},
}}


def test_parse_and_match_exact_before_patterns():
    cfg = parse_quotas(CONFIG, "q.yaml")
    assert cfg.match("claude-haiku-4-5").rolling_tokens == 500
    assert cfg.match("claude-haiku-4-5-20251001").pattern == "haiku"
    assert cfg.match("claude-3-5-haiku-latest").pattern == "haiku"
    assert cfg.match("claude-sonnet-4-5").weekly_window == 7 * 86400
    assert cfg.match("claude-opus-4") is None and cfg.match(None) is None
    haiku = cfg.match("claude-haiku-x")
    assert (haiku.rolling_window, haiku.weekly_window, haiku.cooldown) == (5 * H, 7 * 86400, 600)
    assert haiku.fallback_lane == "anthropic"


@pytest.mark.parametrize("data, words", [
    ({"haiku": {"rolling": {"tokens": 10}}}, "rolling.window"),
    ({"haiku": {"rolling": {"window": "5x", "tokens": 10}}}, "5x"),
    ({"haiku": {"weekly": {"tokens": -1}}}, "weekly.tokens"),
    ({"haiku": {"warn_pct": 120, "weekly": {"tokens": 1}}}, "warn_pct"),
    ({"haiku": {"colour": 1, "weekly": {"tokens": 1}}}, "colour"),
    ({"haiku": {}}, "needs a rolling or a weekly"),
    ([1, 2], "expected a mapping"),
])
def test_bad_config_names_key_and_value(data, words):
    with pytest.raises(QuotaError, match=words.replace(".", r"\.")) as info:
        parse_quotas(data, "q.yaml")
    assert "q.yaml" in str(info.value)


def test_unknown_fallback_lane_is_rejected():
    with pytest.raises(QuotaError, match="fallback_lane='nowhere'"):
        parse_quotas({"haiku": {"weekly": {"tokens": 1}, "fallback_lane": "nowhere"}}, "q",
                     lanes=["anthropic", "zai"])


def test_load_quotas_names_file(tmp_path):
    bad = tmp_path / "q.yaml"
    bad.write_text("quotas: [unclosed")
    with pytest.raises(QuotaError, match="not valid YAML"):
        load_quotas(bad)
    bad.write_text("quotas:\n  haiku:\n    weekly: {tokens: 10}\n")
    assert load_quotas(bad).source == str(bad)


def test_reroute_modes_parse():
    assert parse_reroute_mode("warn-first") == "warn_first" and parse_reroute_mode("") == "block"
    with pytest.raises(ValueError):
        parse_reroute_mode("sometimes")


def test_book_span_covers_every_window_cooldown_and_rate():
    from proxy.config.quotas import RATE_WINDOW
    assert book_span(parse_quotas(None)) is None
    assert book_span(parse_quotas(CONFIG)) == 7 * 86400.0
    short = parse_quotas({"haiku": {"rolling": {"window": "1m", "tokens": 5},
                                    "weekly": {"window": "2m", "tokens": 9}}})
    assert book_span(short) == RATE_WINDOW
    cool = parse_quotas({"haiku": {"weekly": {"window": "1h", "tokens": 9}, "cooldown": "2h"}})
    assert book_span(cool) == 2 * H


def test_the_top_level_may_be_the_quotas_themselves_and_empty_means_none():
    bare = parse_quotas({"haiku": {"weekly": {"tokens": 7}}}, "q.yaml")
    assert [q.pattern for q in bare.quotas] == ["haiku"] and bare.source == "q.yaml"
    assert parse_quotas(None, "q.yaml").quotas == () and parse_quotas({"quotas": None}).quotas == ()
    with pytest.raises(QuotaError, match="`quotas` must map"):
        parse_quotas({"quotas": ["haiku"]}, "q.yaml")


def test_lane_names_are_stripped_and_an_empty_one_is_refused():
    q = parse_quotas({"opus": {"weekly": {"tokens": 1}, "fallback_lane": " zai ", "lane": "glm"}})
    [opus] = q.quotas
    assert (opus.fallback_lane, opus.lane, opus.weekly_window) == ("zai", "glm", DEFAULT_WEEK)
    with pytest.raises(QuotaError, match=r"quotas\.opus\.lane=' ': expected a lane name"):
        parse_quotas({"opus": {"weekly": {"tokens": 1}, "lane": " "}})


def test_tokens_must_be_a_whole_positive_number_not_a_bool():
    for bad in (True, 0, 1.5, "10"):
        with pytest.raises(QuotaError, match="weekly.tokens"):
            parse_quotas({"haiku": {"weekly": {"tokens": bad}}})


def test_parse_span_reads_the_shared_units_and_names_the_key_when_it_cannot():
    assert (parse_span("k", 300), parse_span("k", "30s"), parse_span("k", "1w")) == \
        (300.0, 30.0, 7 * 86400.0)
    with pytest.raises(QuotaError, match=r"^quotas\.haiku\.cooldown='0m': expected a positive span"):
        parse_span("quotas.haiku.cooldown", "0m")


def test_a_quota_matches_its_family_its_id_or_its_glob():
    assert Quota("haiku").matches("claude-3-5-haiku-latest")
    assert not Quota("haiku").matches("claude-sonnet-4-5")
    assert Quota("claude-*-4-5").matches("claude-opus-4-5")
    assert Quota("gpt-x").matches("gpt-x") and not Quota("gpt-x").matches("gpt-x2")


def test_public_view_shows_only_the_budgets_that_are_set():
    cfg = parse_quotas(CONFIG, "q.yaml")
    view = cfg.public()
    assert view["source"] == "q.yaml" and [q["pattern"] for q in view["quotas"]] == list(CONFIG["quotas"])
    sonnet = view["quotas"][2]
    assert sonnet["rolling"] is None and sonnet["weekly"] == {"window_s": 7 * 86400.0, "tokens": 100}
    assert view["quotas"][1]["cooldown_s"] == 600.0 and sonnet["lane"] == "anthropic"


def test_load_quotas_names_a_file_it_cannot_read(tmp_path):
    with pytest.raises(QuotaError, match=f"^{tmp_path / 'none.yaml'}: cannot read"):
        load_quotas(tmp_path / "none.yaml")
