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


def test_names_carry_the_instance_and_a_fleets_folders_merge_into_one_timeline(tmp_path, capsys):
    from proxy.sinks.trajectory import instance_tag, main, merge
    assert instance_tag("host:18080") == "host-18080" and instance_tag(None) == ""
    shims = [TrajectoryWriter(tmp_path / name, name) for name in ("s0", "s1", "s2")]
    stems = []
    for i in range(6):  # one session, its requests round-robin over three shims
        w = shims[i % 3]
        ts = w.new_ts()
        assert f"Z-s{i % 3}-" in ts
        w.write_query("sess-1", ts, {"n": i, "token": "sess-token-xyz-123"}, {"route": "zai",
                      "instance": f"s{i % 3}"}, ["sess-token-xyz-123"])
        w.write_answer("sess-1", ts, {"route": "zai"}, {"n": i}, {"n": i}, [])
        stems.append(ts)
    # an old shim's names (no instance) that collide, with other bytes
    for name in ("old0", "old1"):
        TrajectoryWriter(tmp_path / name).write_query("sess-2", "20270101T000000.000000Z-000001",
                                                      {"from": name}, {}, [])
    out = tmp_path / "merged"
    report = merge([tmp_path / n for n in ("s0", "s1", "s2")] + [tmp_path / "old0" / "trajectory",
                                                                  tmp_path / "old1"], out)
    assert report["sess-1"]["pairs"] == 6 and report["sess-1"]["copied"] == 12
    index = [json.loads(line) for line in (out / "sess-1" / "index.jsonl").read_text().splitlines()]
    assert [r["query"] for r in index] == [f"query/{s}.json" for s in stems]  # time order
    assert [r["instance"] for r in index] == ["s0", "s1", "s2"] * 2
    assert all(r["answer"] for r in index)
    assert "sess-token-xyz-123" not in (out / "sess-1" / "query" / f"{stems[0]}.json").read_text()
    assert sorted(p.name for p in (out / "sess-2" / "query").iterdir()) == [
        "20270101T000000.000000Z-000001.json", "20270101T000000.000000Z-000001~1.json"]
    assert report["sess-2"]["renamed"] == 1
    again = merge([tmp_path / "s0"], out)  # merging again adds nothing
    assert again["sess-1"]["copied"] == 0 and again["sess-1"]["same"] == 4
    assert main(["merge", str(tmp_path / "s1"), "--out", str(tmp_path / "m2")]) == 0
    assert "sess-1: 2 pair(s)" in capsys.readouterr().out
    assert main(["merge", str(tmp_path / "nowhere"), "--out", str(tmp_path / "m3")]) == 2


def test_a_session_folder_with_no_pairs_yet_merges_into_an_empty_index(tmp_path):
    from proxy.sinks.trajectory import merge
    (tmp_path / "a" / "sess-empty").mkdir(parents=True)
    report = merge([tmp_path / "a"], tmp_path / "out")
    assert report["sess-empty"]["pairs"] == 0
    assert (tmp_path / "out" / "sess-empty" / "index.jsonl").read_text() == ""
