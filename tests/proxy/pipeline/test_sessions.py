import pytest

from proxy.pipeline.sessions import SessionError, SessionRegistry, inbound_tokens, slug

pytestmark = pytest.mark.quick


def test_register_lookup_end():
    reg = SessionRegistry()
    s = reg.register("tok-1234567890", "sbx-42", "claude proxy demo")
    assert s.id.startswith("claude-proxy-demo-sbx-42-")
    assert reg.for_token("tok-1234567890") is s
    assert reg.register("tok-1234567890", "sbx-42", "claude proxy demo") is s  # idempotent
    assert "tok-1234567890" not in repr(s) and "tok-1234567890" not in str(s.public())
    assert reg.tokens() == {"tok-1234567890"}
    assert reg.end(s.id) is s and reg.for_token("tok-1234567890") is None and reg.list() == []


@pytest.mark.parametrize("args, field", [(("", "s", "t"), "session_token"), (("short", "s", "t"), "session_token"),
                                         (("tok-1234567890", " ", "t"), "sandbox_id"),
                                         (("tok-1234567890", "s", None), "task_name")])
def test_bad_registrations_name_the_field(args, field):
    with pytest.raises(SessionError, match=field):
        SessionRegistry().register(*args)


def test_same_token_for_another_sandbox_is_refused():
    reg = SessionRegistry()
    reg.register("tok-1234567890", "a", "t")
    with pytest.raises(SessionError, match="already registered"):
        reg.register("tok-1234567890", "b", "t")


def test_inbound_tokens_and_slug():
    assert inbound_tokens([("Authorization", "Bearer abc"), ("x-api-key", "def"), ("x", "y")]) == ["abc", "def"]
    assert slug("../../etc/passwd") == "etc-passwd"


def test_request_tokens_are_inbound_tokens_of_a_case_insensitive_header_map():
    from multidict import CIMultiDict

    from proxy.pipeline.sessions import inbound_tokens, request_tokens
    cases = [[("X-Api-Key", " k1 ")], [("Authorization", "Bearer  t1"), ("authorization", "t2")],
             [("authorization", "bearer x"), ("x-api-key", "k")],
             [("x-api-key", "k"), ("Authorization", "Bearer b")], [], [("x-api-key", "")],
             [("Authorization", "Bearer ")], [("content-type", "application/json")]]
    for pairs in cases:
        headers = CIMultiDict(pairs)
        assert request_tokens(headers) == inbound_tokens(headers.items()), pairs
    assert request_tokens(CIMultiDict([("x-api-key", "k"), ("authorization", "Bearer b")])) == \
        ["k", "b"]  # both: in the order they came


@pytest.mark.parametrize("value", ["Bearer\ttok-1234567890", "Bearer    tok-1234567890",
                                   "bearer \t tok-1234567890", "BEARER\t\ttok-1234567890 "])
def test_a_session_token_after_any_whitespace_is_the_session(value):
    from multidict import CIMultiDict

    from proxy.pipeline.sessions import request_tokens
    reg = SessionRegistry()
    session = reg.register("tok-1234567890", "a", "t")
    [token] = request_tokens(CIMultiDict([("Authorization", value)]))
    assert reg.for_token(token) is session


# ---------------------------------------------------------------- a fleet's shared sessions
import asyncio  # noqa: E402
import threading  # noqa: E402

from proxy.pipeline import sessions as sessions_mod  # noqa: E402
from proxy.pipeline.sessions import token_hash  # noqa: E402


class FakeFleet:
    """The store side of PgFleet, in memory: it keeps hashes only, as the table does."""

    def __init__(self):
        self.rows: dict[str, dict] = {}  # hash -> row
        self.queries = 0
        self.gate: threading.Event | None = None  # set: lookups block until it is set
        self.fail = False

    def publish(self, sid, h, sandbox_id, task_name, created):
        row = self.rows.get(h)
        if row is None or row["state"] == "ended":
            row = self.rows[h] = {"id": sid, "sandbox_id": sandbox_id, "task_name": task_name,
                                  "state": "active", "created": created, "instance": "a"}
        return dict(row)

    def lookup(self, h):
        self.queries += 1
        if self.gate is not None:
            self.gate.wait(5)
        if self.fail:
            raise OSError("database away")
        row = self.rows.get(h)
        return dict(row) if row and row["state"] == "active" else None

    def end(self, sid, now):
        for row in self.rows.values():
            if row["id"] == sid:
                row["state"] = "ended"
                return dict(row)
        return None

    def ended(self, ids):
        active = {r["id"] for r in self.rows.values() if r["state"] == "active"}
        return [i for i in ids if i not in active]


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


TOKEN = "sess-fleet-token-0001"


def test_a_session_registered_on_one_shim_is_adopted_by_another_and_the_store_has_no_token():
    fleet = FakeFleet()
    a, b = SessionRegistry(fleet), SessionRegistry(fleet)

    async def main():
        s = await a.register_shared(TOKEN, "sbx-1", "task")
        assert list(fleet.rows) == [token_hash(TOKEN)] and TOKEN not in str(fleet.rows)
        found = await b.lookup(TOKEN)
        assert found is not None and found.id == s.id and b.tokens() == {TOKEN}  # now redacted
        assert await b.lookup(TOKEN) is found and fleet.queries == 1  # known: no more queries
        with pytest.raises(SessionError, match="another sandbox"):
            await b.register_shared(TOKEN, "sbx-2", "task")
        return s

    s = asyncio.run(main())
    assert b.list() == [b.for_token(TOKEN)] and s.id == b.list()[0].id


def test_unknown_tokens_are_asked_once_per_miss_ttl_and_a_flood_of_one_token_is_one_query():
    fleet, clock = FakeFleet(), Clock()
    reg = SessionRegistry(fleet, clock=clock)

    async def main():
        assert await asyncio.gather(*[reg.lookup("unknown-token-123") for _ in range(50)]) == [None] * 50
        assert fleet.queries == 1
        assert await reg.lookup("unknown-token-123") is None and fleet.queries == 1  # cached
        clock.t += sessions_mod.MISS_TTL + 0.1
        assert await reg.lookup("unknown-token-123") is None and fleet.queries == 2
        assert await reg.lookup("short") is None and fleet.queries == 2  # no session is that short

    asyncio.run(main())


def test_a_store_that_does_not_answer_costs_a_request_at_most_the_lookup_timeout(monkeypatch):
    monkeypatch.setattr(sessions_mod, "LOOKUP_TIMEOUT", 0.05)
    fleet = FakeFleet()
    fleet.gate = threading.Event()
    reg = SessionRegistry(fleet)

    async def main():
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        assert await reg.lookup("some-token-12345") is None
        waited = loop.time() - t0
        fleet.gate.set()
        await reg.close()  # the query still running is waited for, not left behind
        return waited

    assert asyncio.run(main()) < 1.0


def test_a_failing_store_is_a_miss():
    fleet = FakeFleet()
    fleet.fail = True
    reg = SessionRegistry(fleet)
    assert asyncio.run(reg.lookup("some-token-12345")) is None


def test_ending_on_one_shim_ends_on_the_others_at_their_next_sync():
    fleet = FakeFleet()
    a, b = SessionRegistry(fleet), SessionRegistry(fleet)

    async def main():
        s = await a.register_shared(TOKEN, "sbx-1", "task")
        assert (await b.lookup(TOKEN)).id == s.id
        ended = await a.end_shared(s.id)
        assert ended["session"] == s.id and a.for_token(TOKEN) is None
        assert b.for_token(TOKEN) is not None  # until b syncs
        assert await b.sync() == [s.id]
        assert b.for_token(TOKEN) is None and b.tokens() == frozenset()
        assert await b.lookup(TOKEN) is None  # the store says ended: not adopted again
        # a session this shim never saw is ended through the store too
        s2 = await a.register_shared("sess-fleet-token-0002", "sbx-2", "task")
        c = SessionRegistry(fleet)
        assert (await c.end_shared(s2.id))["session"] == s2.id
        assert await c.end_shared("nope") is None

    asyncio.run(main())


def test_without_a_fleet_nothing_is_looked_up():
    reg = SessionRegistry()

    async def main():
        s = await reg.register_shared(TOKEN, "sbx", "t")
        assert await reg.lookup(TOKEN) is s and await reg.lookup("other-token-1234") is None
        assert await reg.sync() == [] and (await reg.end_shared(s.id))["session"] == s.id

    asyncio.run(main())
