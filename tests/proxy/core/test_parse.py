"""The one set of parsers for what operators type (proxy.core.parse): switches, durations, sizes,
counts, choices and URLs; every refusal names the key and the value."""
import pytest

from proxy.core.parse import (
    ConfigError,
    parse_base_url,
    parse_bool,
    parse_choice,
    parse_count,
    parse_duration,
    parse_size,
    truthy,
)

pytestmark = pytest.mark.quick


def test_units():
    assert parse_duration("K", "2m") == 120
    assert parse_duration("K", "1h") == 3600
    assert parse_size("K", "512KiB") == 512 * 1024


@pytest.mark.parametrize("raw, seconds", [
    ("250ms", 0.25), ("30s", 30.0), ("15m", 900.0), ("5h", 18000.0), ("7d", 604800.0),
    ("1w", 604800.0), ("30", 30.0), (45, 45.0), ("1.5h", 5400.0), (" 2 m ", 120.0),
])
def test_durations_in_every_unit(raw, seconds):
    assert parse_duration("K", raw) == pytest.approx(seconds)


@pytest.mark.parametrize("raw", ["5x", "h", "-1s", "1H", "", "1 hour"])
def test_a_duration_that_is_not_one_names_key_and_value(raw):
    with pytest.raises(ConfigError, match=rf"^CCP_X={raw!r}: expected a duration such as 30s"):
        parse_duration("CCP_X", raw)


def test_a_zero_duration_is_refused_and_the_expectation_may_be_the_callers():
    with pytest.raises(ConfigError, match=r"^K='0s': must be greater than zero$"):
        parse_duration("K", "0s")
    with pytest.raises(ConfigError, match=r"^K='soon': expected a span of minutes$"):
        parse_duration("K", "soon", "a span of minutes")


@pytest.mark.parametrize("raw, size", [
    ("1048576", 1048576), ("20MB", 20 * 1024**2), ("20m", 20 * 1024**2), ("1MiB", 1024**2),
    ("2gb", 2 * 1024**3), ("1G", 1024**3), ("3k", 3072), ("7b", 7), (" 4 KB ", 4096),
])
def test_sizes_in_binary_units_any_case(raw, size):
    assert parse_size("K", raw) == size


def test_a_bad_or_zero_size_names_the_key():
    with pytest.raises(ConfigError, match=r"^CCP_MAX_BODY_BYTES='lots': expected a size"):
        parse_size("CCP_MAX_BODY_BYTES", "lots")
    with pytest.raises(ConfigError, match=r"^K='0MB': must be greater than zero$"):
        parse_size("K", "0MB")
    with pytest.raises(ConfigError):
        parse_size("K", "1.5MB")


@pytest.mark.parametrize("raw", ["1", "true", "YES", " On "])
def test_switches_on(raw):
    assert parse_bool("K", raw) is True and truthy(raw) is True


@pytest.mark.parametrize("raw", ["0", "false", "No", "OFF", "", "  "])
def test_switches_off(raw):
    assert parse_bool("K", raw) is False and truthy(raw) is False


def test_a_switch_that_is_neither_is_refused_but_truthy_takes_it_as_off():
    with pytest.raises(ConfigError, match=r"^FORCE_HAIKU_TO_ZAI='maybe': expected 1/0, true/false"):
        parse_bool("FORCE_HAIKU_TO_ZAI", "maybe")
    assert truthy("maybe") is False and truthy(None) is False


def test_counts_are_whole_numbers_from_zero():
    assert (parse_count("K", "0"), parse_count("K", " 12 ")) == (0, 12)
    for bad in ("-1", "1.5", "two", ""):
        with pytest.raises(ConfigError, match=r"expected a whole number \(0, 1, 2, \.\.\.\)"):
            parse_count("CCP_BACKOFF_MAX_RETRIES", bad)


def test_a_choice_is_one_of_its_options_case_insensitive():
    assert parse_choice("K", " Authorization ", ("x-api-key", "authorization")) == "authorization"
    with pytest.raises(ConfigError, match=r"^ZAI_HEADER_MODE='cookie': expected one of x-api-key, "
                                          r"authorization$"):
        parse_choice("ZAI_HEADER_MODE", "cookie", ("x-api-key", "authorization"))


def test_base_urls_are_http_or_https_without_the_trailing_slash():
    assert parse_base_url("K", " http://127.0.0.1:9/ ") == "http://127.0.0.1:9"
    assert parse_base_url("K", "https://api.z.ai/api/anthropic//") == "https://api.z.ai/api/anthropic"
    for bad in ("ftp://x", "api.anthropic.com", "https://", "http:// spaced"):
        with pytest.raises(ConfigError, match=r"expected an http:// or https:// URL"):
            parse_base_url("CCP_ZAI_BASE_URL", bad)


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)
