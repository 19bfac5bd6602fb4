"""Hostile input: random methods, paths, headers and bodies never break the running shim.

A property test (hypothesis, derandomized so CI sees the same examples) sends each example to a shim
whose lanes point at the mocks, and checks: no 5xx, never a traceback, an error in the protocol's
JSON shape (OpenAI's on a `/chat/completions` path, Anthropic's elsewhere), one usage record for
every request that reached a recording route, and `/healthz` still answering. Requests that look
like model calls go on to the mocks, which must see nothing but model calls.

aiohttp's HTTP parser rejects some requests before the shim's app sees them (a method it does not
know, a request line or header over 8190 bytes): the shim still answers those 400 with a request id
and the Anthropic error JSON, and records them.
Bugs this test found (deep JSON, undecodable and gzip request bodies) are pinned by the named tests at
the end; the `KNOWN_BUG_*` flags let the property test steer around a bug while it is open.
"""
from __future__ import annotations

import gzip
import json
import string

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from yarl import URL

pytestmark = [pytest.mark.faults]

KNOWN_BUG_DEEP_JSON = False         # test_deeply_nested_json_is_a_400
KNOWN_BUG_CONTENT_ENCODING = False  # test_undecodable_content_encoding_is_a_400
DEEP_JSON_SAFE = 900                # nesting the shim survives today; ~990 and deeper answer 500
MAX_DEPTH = DEEP_JSON_SAFE if KNOWN_BUG_DEEP_JSON else 1_000

STANDARD_METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS")
TCHAR = string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~"
KNOWN_PATHS = ("/v1/messages", "/v1/message", "/v1/messages?beta=true", "/v1/chat/completions",
               "/v1/messages/count_tokens", "/", "/healthz", "/readyz", "/metrics", "/v1/sessions",
               "/v1/sessions/nope", "/v1", "/v1/messages/", "/api/anthropic/v1/messages")
MODEL_PATHS = ("/v1/messages", "/v1/message", "/v1/chat/completions", "/v1/messages/count_tokens")
# headers httpx owns or that change the framing (content-length lies are out of scope)
FRAMING = {"host", "content-length", "transfer-encoding", "connection", "expect", "upgrade", "te",
           "trailer", "keep-alive", "proxy-connection", "x-mock-fault", "x-mock-deltas"}
INTERESTING_HEADERS = ("x-api-key", "authorization", "anthropic-version", "anthropic-beta",
                       "accept", "accept-encoding", "user-agent", "x-claude-code-session-id",
                       "x-ccp-admin-token", "cookie", "x-forwarded-for", "origin")
CONTENT_TYPES = (None, "application/json", "application/json; charset=utf-8", "APPLICATION/JSON",
                 "application/json; charset=latin-1", "application/json;;;", "text/plain",
                 "text/event-stream", "multipart/form-data; boundary=x",
                 "application/x-www-form-urlencoded", "application/octet-stream", "*/*", "json",
                 "application/vnd.api+json")


# ---- strategies ----------------------------------------------------------------------------------

def weighted(*choices: tuple[int, st.SearchStrategy]) -> st.SearchStrategy:
    """One of the strategies, picked in proportion to its weight (`one_of` is not uniform)."""
    table = [strategy for weight, strategy in choices for _ in range(weight)]
    return st.sampled_from(range(len(table))).flatmap(lambda i: table[i])


_standard = st.sampled_from(STANDARD_METHODS)
methods = weighted((6, _standard), (1, _standard.map(str.lower)),
                   (1, st.text(string.ascii_uppercase, min_size=1, max_size=10)),
                   (1, st.text(TCHAR, min_size=1, max_size=12)))

_segment = st.one_of(
    st.text(string.ascii_letters + string.digits + "-._~", min_size=1, max_size=12),
    st.sampled_from(["..", ".", "%2e%2e", "%00", "%ff", "%2F", "%C3%BC", "%", "%zz", "%%", "v1",
                     "messages", "healthz", "chat", "completions", "sessions", ";", "@", ":", "!"]),
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=6),
)
_random_path = st.lists(_segment, min_size=1, max_size=8).map(lambda segs: "/" + "/".join(segs))
paths = st.one_of(st.sampled_from(KNOWN_PATHS), _random_path,
                  st.sampled_from(MODEL_PATHS).flatmap(lambda p: _random_path.map(lambda r: p + r)),
                  st.integers(200, 4_000).map(lambda n: "/" + "x" * n))

_value = st.text(string.printable.strip() + " ", min_size=1, max_size=80).map(str.strip).filter(bool)
_name = st.one_of(st.sampled_from(INTERESTING_HEADERS), st.text(TCHAR, min_size=1, max_size=20))
_encodings = st.sampled_from(["gzip", "deflate", "br", "identity", "x-garbage"])
headers = st.dictionaries(_name.filter(lambda n: n.lower() not in FRAMING), _value, max_size=6)
if not KNOWN_BUG_CONTENT_ENCODING:  # a body that is not what its content-encoding says
    headers = weighted((5, headers), (1, st.builds(lambda h, e: {**h, "content-encoding": e},
                                                       headers, _encodings)))

_json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                       st.text(max_size=20))
json_values = st.recursive(_json_leaf, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=20)
_models = st.one_of(st.sampled_from(["claude-sonnet-4-5", "claude-haiku-4-5", "claude-3-5-haiku-latest",
                                     "", " ", "gpt-4o", "\u00e9\u00e9"]), st.text(max_size=30),
                    json_values)
_messages = st.one_of(st.just([{"role": "user", "content": "hi"}]), json_values,
                      st.lists(json_values, max_size=3))


def _nest(depth: int, kind: str) -> object:
    value: object = "deep"
    for _ in range(depth):
        value = [value] if kind == "list" else {"a": value}
    return value


_depths = weighted((2, st.integers(1, 64)), (1, st.integers(64, MAX_DEPTH)),
                   (1, st.sampled_from([128, 512, DEEP_JSON_SAFE, MAX_DEPTH])))
nested = st.builds(_nest, _depths, st.sampled_from(["list", "dict"]))
# an Anthropic request with any field of any type (model as number/list/null, stream as string, …)
anthropic_like = st.fixed_dictionaries({"model": _models}, optional={
    "messages": st.one_of(_messages, nested), "stream": st.one_of(st.booleans(), json_values),
    "max_tokens": st.one_of(st.integers(-5, 100), json_values), "system": json_values,
    "tools": json_values, "thinking": json_values, "metadata": nested})
bodies = st.one_of(
    st.none(),
    st.binary(max_size=512),
    json_values.map(lambda v: json.dumps(v).encode()),
    anthropic_like.map(lambda v: json.dumps(v).encode()),
    nested.map(lambda v: json.dumps(v).encode()),
    anthropic_like.map(lambda v: json.dumps(v).encode()[:-1]),  # cut short
)
anything = st.fixed_dictionaries({"method": methods, "path": paths, "headers": headers,
                                  "content_type": st.sampled_from(CONTENT_TYPES), "body": bodies})
# most examples look like model calls, so that the body checks and the relay are exercised too
model_calls = st.fixed_dictionaries({
    "method": weighted((8, st.just("POST")), (1, methods)),
    "path": weighted((6, st.sampled_from(MODEL_PATHS)), (2, st.sampled_from(MODEL_PATHS).map(
        lambda p: p + "?beta=true")), (1, paths)),
    "headers": headers,
    "content_type": weighted((6, st.just("application/json")), (1, st.sampled_from(CONTENT_TYPES))),
    "body": weighted((4, anthropic_like.map(lambda v: json.dumps(v).encode())), (2, bodies))})
requests = weighted((3, model_calls), (1, anything))


# ---- what the shim should do ---------------------------------------------------------------------

def server_path(resp: httpx.Response) -> tuple[str, str]:
    """The path as aiohttp routes it (decoded, and with %2F kept), from the bytes httpx sent."""
    raw = resp.request.url.raw_path.decode("ascii").split("?", 1)[0]
    url = URL.build(path=raw, encoded=True)
    return url.path, url.path_safe


def records_a_line(method: str, resp: httpx.Response) -> bool:
    """Every request that reaches the shim records one line, except health, metrics and sessions."""
    path, safe = server_path(resp)
    method = method.upper()  # aiohttp's parser takes `get` for GET
    if method in ("GET", "HEAD") and path in ("/", "/healthz", "/readyz", "/metrics", "/v1/sessions"):
        return False
    if method == "POST" and path == "/v1/sessions":
        return False
    parts = safe.split("/")
    return not (method == "DELETE" and len(parts) == 4 and parts[:3] == ["", "v1", "sessions"]
                and parts[3])


def check_error_shape(resp: httpx.Response, path: str) -> None:
    obj = resp.json()
    if path.endswith("/chat/completions"):
        assert isinstance(obj["error"], dict) and {"message", "type"} <= set(obj["error"]), obj
    else:
        assert obj["type"] == "error" and {"type", "message"} <= set(obj["error"]), obj
        assert isinstance(obj["error"]["type"], str) and isinstance(obj["error"]["message"], str), obj


# ---- the property --------------------------------------------------------------------------------

@settings(max_examples=150, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(req=requests)
@example(req={"method": "GET", "path": "/metrics", "headers": {}, "content_type": None, "body": None})
def test_hostile_requests_never_break_the_shim(req, hostile):
    hostile.send(req)


@pytest.fixture
def hostile(make_shim, mock_anthropic, mock_zai):
    """One shim and one client for every example; checks the record count when the test ends."""
    tally = Hostile(make_shim())
    yield tally
    tally.client.close()
    records = tally.shim.records()
    assert len(records) == tally.expected, (len(records), tally.expected, tally.sent)
    # the shim's own catch-all logs "unexpected error" (aiohttp's parser logs its rejections itself)
    assert "unexpected error" not in tally.shim.stderr_tail(100_000)


class Hostile:
    """Sends one example, checks the answer, and counts the records the shim owes."""

    def __init__(self, shim) -> None:
        self.shim = shim
        self.client = httpx.Client(trust_env=False, timeout=30)
        self.expected = 0
        self.sent = 0

    def send(self, req: dict) -> None:
        method = req["method"].upper()
        headers = dict(req["headers"])
        if req["content_type"] is not None:
            headers["content-type"] = req["content_type"]
        resp = self.client.request(req["method"], self.shim.url + req["path"], headers=headers,
                                   content=req["body"])
        self.sent += 1
        rid = resp.headers.get("x-ccp-request-id")
        path, _ = server_path(resp)
        # aiohttp's HTTP parser answers some requests itself (an error in plain text, no request
        # id); /metrics answers 200 in plain text without one too, and is no rejection
        parser_rejected = rid is None and resp.status_code >= 400 and not resp.headers.get(
            "content-type", "").startswith("application/json")
        recorded = not parser_rejected and records_a_line(method, resp)
        self.expected += recorded  # counted first, so a failed example leaves the tally right

        text = resp.text
        what = (req["method"], path[:80], resp.status_code, text[:300])
        assert resp.status_code < 500, what
        assert "Traceback" not in text and 'File "' not in text, what
        if parser_rejected:
            assert resp.status_code == 400 and method not in STANDARD_METHODS, what
        if recorded:
            assert rid, what
            assert self.shim.record_for(rid)["status"] == resp.status_code, what
        if resp.status_code >= 400 and method != "HEAD" and not parser_rejected:
            check_error_shape(resp, path)
        health = self.client.get(f"{self.shim.url}/healthz")
        assert health.status_code == 200 and health.json() == {"ok": True}


# ---- known shim bugs (and one limitation), each as one plain request ---------------------------

JSON = {"content-type": "application/json", "x-api-key": "k"}
OK_BODY = {"model": "claude-sonnet-4-5", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}


def _bad_request(shim, resp: httpx.Response) -> None:
    assert resp.status_code == 400, (resp.status_code, resp.text[:200])
    check_error_shape(resp, "/v1/messages")
    assert resp.json()["error"]["type"] == "invalid_request_error"
    assert shim.record_for(resp.headers["x-ccp-request-id"])["err_type"] == "bad_request"


def test_deeply_nested_json_is_a_400(make_shim, mock_anthropic, mock_zai):
    shim = make_shim()
    body = b'{"model":"claude-sonnet-4-5","messages":' + b"[" * 1_000 + b"]" * 1_000 + b"}"
    resp = httpx.post(f"{shim.url}/v1/messages", content=body, headers=JSON, trust_env=False)
    _bad_request(shim, resp)
    assert mock_anthropic.calls == []


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_undecodable_content_encoding_is_a_400(make_shim, mock_anthropic, mock_zai, encoding):
    shim = make_shim()
    resp = httpx.post(f"{shim.url}/v1/messages", content=b"this is not " + encoding.encode(),
                      headers={**JSON, "content-encoding": encoding}, trust_env=False)
    _bad_request(shim, resp)


def test_gzip_request_body_reaches_the_upstream_intact(make_shim, mock_anthropic, mock_zai):
    shim = make_shim()
    resp = httpx.post(f"{shim.url}/v1/messages", content=gzip.compress(json.dumps(OK_BODY).encode()),
                      headers={**JSON, "content-encoding": "gzip"}, trust_env=False)
    assert resp.status_code == 200, (resp.status_code, resp.text[:200])
    [call] = mock_anthropic.wait_for_calls(1)
    body = gzip.decompress(call.body) if call.headers.get("content-encoding") == "gzip" else call.body
    assert json.loads(body) == OK_BODY


@pytest.mark.parametrize("method, path, headers", [
    ("BREW", "/v1/messages", {}),                      # a method aiohttp's parser does not know
    ("POST", "/" + "x" * 9_000, {}),                   # a request line over 8190 bytes
    ("POST", "/v1/messages", {"x-big": "y" * 9_000}),  # a header over 8190 bytes
], ids=["unknown-method", "long-request-line", "long-header"])
def test_requests_the_http_parser_rejects(make_shim, mock_anthropic, mock_zai, method, path, headers):
    """aiohttp's parser rejects these before the app sees them; the shim still answers 400 with a
    request id and the Anthropic error JSON (the path is unknown then), records it (reason
    `bad_http`), and keeps serving."""
    shim = make_shim()
    with httpx.Client(trust_env=False, timeout=10) as client:
        resp = client.request(method, shim.url + path, headers={**JSON, **headers},
                              content=json.dumps(OK_BODY).encode())
        assert resp.status_code == 400 and "Traceback" not in resp.text
        assert resp.json()["type"] == "error" and resp.json()["error"]["type"] == "invalid_request_error"
        rejected = resp.headers["x-ccp-request-id"]
        assert client.get(f"{shim.url}/healthz").status_code == 200
        ok = client.post(f"{shim.url}/v1/messages", json=OK_BODY, headers={"x-api-key": "k"})
        assert ok.status_code == 200
    records = shim.wait_for_records(2)
    assert [r["rid"] for r in records] == [rejected, ok.headers["x-ccp-request-id"]]
    assert (records[0]["status"], records[0]["err_type"], records[0]["reason"]) == \
        (400, "bad_request", "bad_http")
    shim.stop()
    assert "Traceback" not in shim.stderr_path.read_text()  # one line per rejection, no flood


def test_undecodable_body_with_a_wrong_content_type_always_gets_an_answer(make_shim, mock_anthropic, mock_zai):
    """Found by the property test on CI: text/plain + `content-encoding: deflate` + a body that is not
    deflate sometimes lost the connection instead of getting an answer."""
    shim = make_shim()
    with httpx.Client(trust_env=False, timeout=10) as client:
        for path in ("/v1/message", "/v1/messages", "/v2/nowhere"):
            for _ in range(15):
                resp = client.post(f"{shim.url}{path}", content=b'{"model": {"x": 1}}',
                                   headers={"content-type": "text/plain", "content-encoding": "deflate"})
                assert resp.status_code in (400, 404), resp.text
                assert resp.json()["type"] == "error"
