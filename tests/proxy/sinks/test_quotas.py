import pytest

from proxy.config.catalog import Catalog, builtin_providers
from proxy.config.quotas import parse_quotas
from proxy.config.settings import Settings
from proxy.core.record import utc_timestamp
from proxy.core.routing import Decision
from proxy.sinks.quotas import (
    QuotaBook,
    QuotaState,
    apply_quota,
    calibrate,
    record_time,
)

pytestmark = pytest.mark.quick

H = 3600.0
T0 = 1_800_000_000.0
CONFIG = {"quotas": {
    "claude-haiku-4-5": {"rolling": {"window": "1h", "tokens": 500}},
    "haiku": {"rolling": {"window": "5h", "tokens": 1000}, "weekly": {"tokens": 5000},
              "warn_pct": 80, "cooldown": "10m"},
    "claude-sonnet-*": {"weekly": {"window": "7d", "tokens": 100}, "lane": "anthropic"},
}}


def rec(model="claude-haiku-4-5-20251001", t=T0, n=100, status=200, lane="zai"):
    return {"ts": utc_timestamp(t), "model": model, "lane": lane, "status": status,
            "upstream_status": status, "in_tokens": n, "out_tokens": 0}


def book():
    return QuotaBook(parse_quotas(CONFIG, "q.yaml"))


def test_warn_and_block_from_records():
    b = book()
    b.account(rec(n=850))
    st = b.state("claude-haiku-4-5-20251001", T0 + 1)
    assert (st.rolling_pct, st.weekly_pct, st.warn, st.block) == (85.0, 17.0, True, False)
    assert st.eta_reset == pytest.approx(5 * H - 1)
    b.account(rec(t=T0 + 10, n=200))
    st = b.state("claude-haiku-4-5-20251001", T0 + 11)
    assert st.block and st.rolling_pct == pytest.approx(105.0)
    # the block lifts when the 850 leave the window (200 < 1000): 5h after T0
    assert st.eta_reset == pytest.approx(5 * H - 11)
    assert b.state("claude-haiku-4-5-20251001", T0 + 5 * H + 60).block is False


def test_weekly_counts_strictly_over_its_own_span():
    b = book()
    b.account(rec(t=T0, n=1000))
    week = 7 * 86400
    assert b.state("claude-haiku-x", T0 + week - 1).weekly_pct == 20.0
    assert b.state("claude-haiku-x", T0 + week).weekly_pct == 0.0  # ts == now - span: outside
    assert b.state("claude-haiku-x", T0 + 6 * H).rolling_pct == 0.0  # rolling already empty


def test_lane_scoped_quota_ignores_other_lanes():
    b = book()
    b.account(rec("claude-sonnet-4-5", n=50, lane="zai"))
    assert b.state("claude-sonnet-4-5", T0).weekly_pct == 0.0
    b.account(rec("claude-sonnet-4-5", n=50, lane="anthropic"))
    assert b.state("claude-sonnet-4-5", T0).weekly_pct == 50.0


def test_cooldown_holds_the_block_and_429_calibrates():
    b = book()
    b.account(rec(n=1000))  # 100 % → block, cooldown 10 min from T0
    b.account(rec(t=T0 + 1, n=0, status=429))
    st = b.state("claude-haiku-x", T0 + 5 * H + 1)  # the window is empty again ...
    assert st.rolling_pct == 0.0 and not st.block  # ... and the 10-min cooldown long over
    b2 = book()
    b2.account(rec(n=900))
    b2.account(rec(t=T0 + 1, n=0, status=429))  # real limit hit at 90 %
    st = b2.state("claude-haiku-x", T0 + 2)
    assert st.block and st.limited and st.cooldown_until == T0 + 1 + 600
    assert st.limit_hits == 1 and st.warn_pct_auto == pytest.approx(72.0)
    assert 0 < st.warn_pct_auto_confidence < 0.5
    assert not b2.state("claude-haiku-x", T0 + 700).limited


def test_calibrate_confidence_grows_and_spread_shrinks_it():
    assert calibrate([], 80) == (None, 0.0)
    _, one = calibrate([90.0], 80)
    _, many = calibrate([90.0] * 6, 80)
    _, noisy = calibrate([50.0, 90.0, 130.0, 70.0, 110.0, 90.0], 80)
    assert one < many and noisy < many


def test_restore_rebuilds_the_same_state():
    records = [rec(t=T0 + i, n=100) for i in range(9)]
    a, b = book(), book()
    for r in records:
        a.account(r)
    assert b.restore([{**r, "ts": record_time(r)} for r in records]) == 9
    assert a.state("claude-haiku-x", T0 + 20) == b.state("claude-haiku-x", T0 + 20)


def test_reload_keeps_history_of_patterns_that_stay():
    b = book()
    b.account(rec(n=300))
    b.reload(parse_quotas({"haiku": {"rolling": {"window": "5h", "tokens": 600}}}))
    assert b.state("claude-haiku-x", T0).rolling_pct == 50.0
    assert list(b.states(T0)) == ["haiku"]


def _state(**kw):
    base = dict(pattern="haiku", rolling_pct=50.0, weekly_pct=None, warn=False, block=False,
                tokens_per_s=0.0, eta_reset=None)
    return QuotaState(**{**base, **kw})


CATALOG = Catalog(builtin_providers(Settings()))
TO_ZAI = Decision("zai", "zai", "claude-haiku-4-5", "to_zai")


@pytest.mark.parametrize("mode, state, expect", [
    ("block", None, TO_ZAI),
    ("block", _state(), TO_ZAI),
    ("block", _state(warn=True), TO_ZAI),
    ("block", _state(warn=True, block=True),
     Decision("anthropic", "anthropic", "claude-haiku-4-5", "quota_block")),
    ("early", _state(warn=True), Decision("anthropic", "anthropic", "claude-haiku-4-5", "quota_block")),
    ("warn_first", _state(warn=True, block=True), TO_ZAI._replace(reason="quota_warn_attempt")),
    ("warn_first", _state(warn=True, block=True, limited=True),
     Decision("anthropic", "anthropic", "claude-haiku-4-5", "quota_block")),
    ("off", _state(warn=True, block=True), TO_ZAI),
])
def test_apply_quota_row_4b(mode, state, expect):
    assert apply_quota(TO_ZAI, state, mode, CATALOG) == expect


def test_apply_quota_leaves_other_decisions_and_unknown_lanes():
    blocked = _state(warn=True, block=True, fallback_lane="nowhere")
    other = Decision("anthropic", "anthropic", "claude-sonnet-4-5", "to_anth")
    assert apply_quota(other, blocked, "block", CATALOG) is other
    assert apply_quota(TO_ZAI, blocked, "block", CATALOG).lane == "anthropic"


def test_record_time_reads_the_shims_own_stamps_as_fromisoformat_does():
    """record_time() reads the shim's own `ts` format by a per-second lookup: the same float as the
    general path, also across seconds, before 1970 and on malformed stamps."""
    import random
    from datetime import datetime

    from proxy.sinks.quotas import record_time
    rng = random.Random(7)
    for t in [rng.uniform(-2e9, 4e9) for _ in range(2000)] + [-0.5, 0.0, 0.9995, 1795566662.123]:
        ts = utc_timestamp(t)
        want = datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
        assert record_time({"ts": ts}) == want == record_time({"ts": ts})  # miss, then hit
    for bad in ("2026-11-25T00:31:02.1a3Z", "2026-11-25T00:31:62.123Z", "", "yesterday"):
        assert record_time({"ts": bad}) is None
    assert record_time({"ts": "2026-11-25T00:31:02Z"}) == 1795566662.0


def test_rebuild_is_a_fresh_book_of_the_records_with_a_longer_window():
    """A reload that lengthens a window counts the records a new book would (the old one had
    pruned them), and a quota the reload adds counts its own records."""
    short = parse_quotas({"haiku": {"rolling": {"window": "1h", "tokens": 1000},
                                    "weekly": {"window": "2h", "tokens": 1000}}})
    longer = parse_quotas({"haiku": {"rolling": {"window": "5h", "tokens": 1000}},
                           "sonnet": {"weekly": {"tokens": 1000}}})
    records = [{**rec(t=T0 - 3 * H, n=200), "rid": "old"},
               {**rec(model="claude-sonnet-4-5", t=T0 - 60, n=30), "rid": "s"},
               {**rec(t=T0 - 60, n=100), "rid": "new"}]
    b = QuotaBook(short)
    for r in records:
        b.account(r)
    assert b.state("claude-haiku-x", T0).rolling_tokens == 100
    kept = QuotaBook(short)
    for r in records:
        kept.account(r)
    kept.reload(longer)  # without a store: only what memory still holds
    assert kept.state("claude-haiku-x", T0).rolling_tokens == 100
    assert kept.state("claude-sonnet-4-5", T0).weekly_tokens == 0
    stored = [{**r, "ts": record_time(r)} for r in records]
    assert b.rebuild(longer, stored) == 3
    haiku = b.state("claude-haiku-x", T0)
    assert (haiku.rolling_tokens, haiku.rolling_pct) == (300, 30.0)
    fresh = QuotaBook(longer)
    fresh.restore(stored)
    assert b.states(T0) == fresh.states(T0)
    assert b.state("claude-sonnet-4-5", T0).weekly_tokens == 30


def test_rebuild_adds_what_came_in_during_the_read_once():
    """Records accounted between begin_rebuild() and rebuild() count, and count once when the
    store read already held them (by rid)."""
    config = parse_quotas({"haiku": {"rolling": {"window": "5h", "tokens": 1000}}})
    first, dup, late = ({**rec(t=T0 - 90, n=n), "rid": rid}
                        for rid, n in (("first", 100), ("dup", 20), ("late", 3)))
    b = QuotaBook(config)
    b.account(first)
    b.begin_rebuild()
    b.account(dup)   # queued before the read: the store has it
    b.account(late)  # after the read: only the book saw it
    stored = [{**r, "ts": record_time(r)} for r in (first, dup)]
    assert b.rebuild(config, stored) == 3
    assert b.state("claude-haiku-x", T0).rolling_tokens == 123
    b.account({**rec(t=T0 - 30, n=1), "rid": "after"})  # the journal ended with the rebuild
    assert b._journal is None and b.state("claude-haiku-x", T0).rolling_tokens == 124
    b.begin_rebuild()
    b.cancel_rebuild()
    assert b._journal is None


# ---------------------------------------------------------------- a fleet's book
def test_a_fleet_book_counts_each_instance_and_shares_its_429_cooldowns():
    from proxy.config.quotas import quotas_from_text
    from proxy.core.record import utc_timestamp

    config = quotas_from_text(
        "quotas:\n  haiku:\n    rolling: {window: 5h, tokens: 1000}\n    cooldown: 10m\n", "q.yaml")
    t = 1_800_000_000.0
    book = QuotaBook(config, "a")
    for i, who in enumerate(["b", None, "c", None]):  # None: this shim's own record
        rec = {"rid": f"r{i}", "ts": utc_timestamp(t + i), "model": "claude-haiku-4-5",
               "lane": "zai", "status": 200, "in_tokens": 50, "out_tokens": 50}
        if who:
            rec["instance"] = who
        book.account(rec)
    st = book.state("claude-haiku-4-5", t + 10)
    assert st.rolling_tokens == 400 and st.instances == {
        "a": {"rolling_tokens": 200, "weekly_tokens": 200},
        "b": {"rolling_tokens": 100, "weekly_tokens": 100},
        "c": {"rolling_tokens": 100, "weekly_tokens": 100}}
    assert book.take_shares() == []
    book.account({"rid": "x", "ts": utc_timestamp(t + 20), "model": "claude-haiku-4-5",
                  "lane": "zai", "status": 429, "upstream_status": 429})
    assert book.take_shares() == [("haiku", "zai", t + 20 + 600)] and book.take_shares() == []
    book.account({"rid": "x2", "ts": utc_timestamp(t + 21), "model": "claude-haiku-4-5",
                  "lane": "zai", "status": 429, "instance": "b"})  # b's own: b shares it
    assert book.take_shares() == []
    # another shim's book, told by the store: blocked and limited until then
    other = QuotaBook(config, "b")
    assert not other.state("claude-haiku-4-5", t + 30).block
    other.apply_shared([{"pattern": "haiku", "until": t + 620}])
    st = other.state("claude-haiku-4-5", t + 30)
    assert st.block and st.limited and st.cooldown_until == t + 620
    assert round(st.eta_reset) == 590
    other.rebuild(config, [])  # a quota sync keeps what the store said of cooldowns
    assert other.state("claude-haiku-4-5", t + 30).block
    assert not other.state("claude-haiku-4-5", t + 621).block
    # one shim alone (no instance): nothing of this
    alone = QuotaBook(config)
    alone.account({"rid": "y", "ts": utc_timestamp(t), "model": "claude-haiku-4-5", "lane": "zai",
                   "status": 429})
    assert alone.take_shares() == [] and alone.state("claude-haiku-4-5", t).instances is None


def test_a_record_counts_its_input_and_output_tokens_towards_its_quota():
    from proxy.sinks.quotas import record_tokens
    assert record_tokens({"in_tokens": 300, "out_tokens": 40}) == 340
    assert record_tokens({"in_tokens": None, "out_tokens": 40}) == 40
    assert record_tokens({"in_tokens": True, "out_tokens": 2}) == 2  # (a bool is not a count)
