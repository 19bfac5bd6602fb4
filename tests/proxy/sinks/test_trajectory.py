import json
import threading

import pytest

from proxy.sinks.trajectory import TrajectoryWriter, parse_json_or_text

pytestmark = pytest.mark.quick


def test_query_and_answer_share_the_ts_and_are_redacted(tmp_path):
    w = TrajectoryWriter(tmp_path)
    ts = w.new_ts()
    q = w.write_query("sess-1", ts, {"messages": [{"content": "key sk-secret-123456"}]},
                      {"route": "zai"}, ["sk-secret-123456"])
    a = w.write_answer("sess-1", ts, {"route": "zai"}, {"content": []}, {"content": []}, [])
    assert q.parent.name == "query" and a.parent.name == "answer" and q.name == a.name == f"{ts}.json"
    query = json.loads(q.read_text())
    assert query["route"] == "zai" and "sk-secret-123456" not in q.read_text()
    assert json.loads(a.read_text())["upstream_response"] == {"content": []}


def test_ts_unique_under_concurrency(tmp_path):
    w = TrajectoryWriter(tmp_path)
    seen: list[str] = []

    def work():
        seen.extend(w.new_ts() for _ in range(500))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(seen)) == 2000


def test_parse_json_or_text():
    assert parse_json_or_text(b'{"a": 1}') == {"a": 1}
    assert parse_json_or_text(b"event: x\n\xff") == "event: x\n\ufffd"


def test_a_lone_surrogate_is_written_as_valid_json(tmp_path):
    w = TrajectoryWriter(tmp_path)
    ts = w.new_ts()
    body = {"messages": [{"content": "\ud800 and \x00"}]}
    q = w.write_query("sess-1", ts, body, {"model": "m\udfff"}, [])
    a = w.write_answer("sess-1", ts, {}, {"text": "\udc00"}, None, [])
    for path in (q, a):
        path.read_bytes().decode("utf-8")
    assert json.loads(q.read_text())["request"] == body
    assert json.loads(q.read_text())["model"] == "m\udfff"
    assert json.loads(a.read_text())["upstream_response"] == {"text": "\udc00"}
