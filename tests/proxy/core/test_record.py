"""The usage record's vocabulary (proxy.core.record): a new record, its tokens, its timestamp and
its one JSON line. The writer of those lines is proxy.sinks.usage_log."""
import json
import random
from datetime import UTC, datetime

import pytest

from proxy.core import record as record_module
from proxy.core.record import (
    FIELDS,
    TOKEN_FIELDS,
    ErrType,
    err_type_of_sse_error,
    new_record,
    record_line,
    set_tokens,
    utc_timestamp,
)

pytestmark = pytest.mark.quick


def test_new_record_has_every_field():
    rec = new_record("r-1", "/v1/messages")
    assert set(FIELDS) <= rec.keys()
    assert rec["rid"] == "r-1" and rec["ts"].endswith("Z")
    assert "header_mode" not in rec  # present on zai records only


def test_set_tokens_ignores_non_ints():
    rec = new_record("r", "/")
    set_tokens(rec, {"in_tokens": 3, "out_tokens": None, "cache_read_tokens": "x"})
    assert (rec["in_tokens"], rec["out_tokens"], rec["cache_read_tokens"]) == (3, None, None)


def test_timestamp_format():
    assert utc_timestamp(0) == "1970-01-01T00:00:00.000Z"


def test_record_line_is_the_json_line_byte_for_byte():
    rec = new_record("abc-000001", "/v1/messages")
    rec.update(model="claude-sonnet-4-5 ✓", latency_ms=1.25, overhead_ms=0.1, in_tokens=12,
               sse={"events": 3, "bytes": 10, "duration_ms": 0.333, "complete": True},
               rewrites=["model"], reason='quote " and \\ and \n')
    expected = (json.dumps(rec, separators=(",", ":"), ensure_ascii=False) + "\n").encode()
    assert record_line(rec) == expected
    rec["in_tokens"] = 2 ** 70  # orjson refuses it; json writes it
    assert record_line(rec).endswith(b"\n") and str(2 ** 70).encode() in record_line(rec)


def test_new_record_starts_with_zero_counters_in_the_documented_field_order():
    rec = new_record("r-2", "/v1/chat/completions", protocol_in="openai")
    assert list(rec)[:len(FIELDS)] == list(FIELDS)
    assert (rec["protocol_in"], rec["path"], rec["h2"]) == ("openai", "/v1/chat/completions", False)
    assert (rec["retries"], rec["bytes_in"], rec["bytes_out"]) == (0, 0, 0)
    assert all(rec[k] is None for k in TOKEN_FIELDS)
    assert new_record("r", "/")["protocol_in"] == "anthropic"


def test_each_new_record_is_its_own_dict():
    a, b = new_record("a", "/"), new_record("b", "/")
    a["model"] = "m"
    assert b["model"] is None and new_record("c", "/")["model"] is None


def test_set_tokens_keeps_values_it_is_not_given_and_ignores_other_keys():
    rec = new_record("r", "/")
    set_tokens(rec, {"in_tokens": 3, "out_tokens": 4})
    set_tokens(rec, {"out_tokens": 9, "thinking_tokens": 5})
    assert (rec["in_tokens"], rec["out_tokens"]) == (3, 9) and "thinking_tokens" not in rec


def test_timestamp_is_what_datetime_writes_also_where_milliseconds_round_over():
    rng = random.Random(3)
    epochs = [rng.uniform(-1e9, 4e9) for _ in range(500)] + [0.9999996, 59.9995, -0.25, 1795566662.123]
    for t in epochs:
        want = datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        assert utc_timestamp(t) == want, t
    assert utc_timestamp(0.9999996) == "1970-01-01T00:00:01.000Z"  # the second carries over


def test_timestamp_without_an_epoch_is_now():
    before = datetime.now(UTC).replace(microsecond=0)
    stamp = datetime.fromisoformat(utc_timestamp())
    assert before <= stamp <= datetime.now(UTC)


def test_record_line_without_orjson_is_the_same_bytes(monkeypatch):
    rec = new_record("abc-000002", "/v1/messages")
    rec.update(model="glm-4.6 ✓", latency_ms=3.5, rewrites=["model", "thinking"])
    fast = record_line(rec)
    monkeypatch.setattr(record_module, "orjson", None)
    assert record_line(rec) == fast and fast.count(b"\n") == 1
    assert json.loads(fast) == rec


def test_a_lone_surrogate_in_a_record_still_makes_one_valid_json_line():
    rec = new_record("r1", "/v1/messages\ud800")
    rec["model"] = "claude-\udfff"
    line = record_line(rec)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    line.decode("utf-8")
    assert json.loads(line)["model"] == "claude-\udfff"


@pytest.mark.parametrize(("error_type", "err_type"), [
    ("overloaded_error", ErrType.UPSTREAM_5XX), ("api_error", ErrType.UPSTREAM_5XX),
    ("invalid_request_error", ErrType.UPSTREAM_4XX), ("rate_limit_error", ErrType.UPSTREAM_4XX)])
def test_an_in_band_error_is_the_upstreams_5xx_when_it_is_overloaded_or_an_api_error(
        error_type, err_type):
    assert err_type_of_sse_error(error_type) == err_type
