import json
import threading

import pytest

from proxy.core.record import new_record
from proxy.sinks.usage_log import UsageWriter

pytestmark = pytest.mark.quick


def test_concurrent_writers_never_split_lines(tmp_path):
    writer = UsageWriter(tmp_path)
    big = "x" * 70000  # larger than a pipe buffer: must still land as one line

    def work(n):
        for i in range(50):
            rec = new_record(f"{n}-{i}", "/v1/messages")
            rec["model"] = big
            writer.write(rec)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    writer.close()
    lines = (tmp_path / "usage.jsonl").read_text().splitlines()
    rids = [json.loads(line)["rid"] for line in lines]
    assert len(rids) == 400 == len(set(rids))


def test_rotate_keeps_five(tmp_path):
    from proxy.sinks.usage_log import rotate_usage
    for n in range(7):
        (tmp_path / "usage.jsonl").write_text(f"{n}\n")
        assert rotate_usage(tmp_path) == tmp_path / "usage.jsonl.1"
    assert not (tmp_path / "usage.jsonl").exists()
    assert [(tmp_path / f"usage.jsonl.{i}").read_text() for i in range(1, 6)] == \
        ["6\n", "5\n", "4\n", "3\n", "2\n"]
    assert not (tmp_path / "usage.jsonl.6").exists()
    assert rotate_usage(tmp_path / "empty") is None


def _all_rids(folder):
    rids = []
    for f in sorted(folder.glob("usage.jsonl*")):
        for line in f.read_text().splitlines():
            rids.append(json.loads(line)["rid"])
    return rids


def test_rotation_by_size_keeps_five_and_never_splits(tmp_path):
    rotated = []
    writer = UsageWriter(tmp_path, max_bytes=2000, on_rotate=lambda: rotated.append(1))
    for i in range(60):
        writer.write(new_record(f"r{i}", "/v1/messages"))
    writer.close()
    files = sorted(p.name for p in tmp_path.glob("usage.jsonl*"))
    assert files == ["usage.jsonl"] + [f"usage.jsonl.{i}" for i in range(1, 6)]
    assert all(p.stat().st_size <= 2000 for p in tmp_path.glob("usage.jsonl*"))
    assert len(rotated) == writer.rotations > 5
    rids = _all_rids(tmp_path)
    assert len(rids) == len(set(rids)) and "r59" in rids  # older ones beyond five files are gone


def test_rotation_by_age(tmp_path):
    writer = UsageWriter(tmp_path, max_age=1e-9)
    writer.write(new_record("a", "/"))
    writer.write(new_record("b", "/"))  # the file is older than max_age: rotate first
    writer.close()
    assert (tmp_path / "usage.jsonl.1").read_text().count("\n") == 1
    assert json.loads((tmp_path / "usage.jsonl").read_text())["rid"] == "b"


def test_writer_follows_a_rotation_done_by_someone_else(tmp_path):
    from proxy.sinks.usage_log import rotate_usage
    writer = UsageWriter(tmp_path)
    writer.write(new_record("before", "/"))
    rotate_usage(tmp_path)  # e.g. `ccp logs-rotate` from another process
    writer.write(new_record("after", "/"))
    writer.close()
    assert json.loads((tmp_path / "usage.jsonl").read_text())["rid"] == "after"
    assert json.loads((tmp_path / "usage.jsonl.1").read_text())["rid"] == "before"


def _write(path, *lines):
    path.write_text("".join(line + "\n" for line in lines))


def test_usage_files_name_the_rotated_copies_oldest_first_then_the_current_file(tmp_path):
    from proxy.sinks.usage_log import rotated_copies, usage_files
    for name in ("usage.jsonl", "usage.jsonl.1", "usage.jsonl.3", "usage.jsonl.6", "other.jsonl"):
        _write(tmp_path / name, "{}")
    assert usage_files(tmp_path) == [tmp_path / n for n in ("usage.jsonl.3", "usage.jsonl.1",
                                                            "usage.jsonl")]
    assert usage_files(tmp_path, rotated=False) == [tmp_path / "usage.jsonl"]
    assert rotated_copies(tmp_path) == [tmp_path / "usage.jsonl.3", tmp_path / "usage.jsonl.1"]
    assert usage_files(tmp_path / "other.jsonl") == [tmp_path / "other.jsonl"]
    assert rotated_copies(tmp_path / "nope") == []
    with pytest.raises(FileNotFoundError):
        usage_files(tmp_path / "nope")


def test_usage_records_read_files_and_folders_in_order_with_the_bad_lines_counted(tmp_path):
    from proxy.sinks.usage_log import usage_records
    logs = tmp_path / "logs"
    logs.mkdir()
    _write(logs / "usage.jsonl.1", '{"rid": "old"}', '{"op": "control"}')
    _write(logs / "usage.jsonl", '{"rid": "new"}', "", "not json")
    (tmp_path / "x.jsonl").write_bytes(b'{"rid": "caf\xe9"}\n{"rid": "torn')
    records, bad = usage_records([logs, tmp_path / "x.jsonl"])
    assert records == [{"rid": "old"}, {"op": "control"}, {"rid": "new"}, {"rid": "caf\ufffd"}]
    assert bad == 2
    assert usage_records(str(logs), rotated=False) == ([{"rid": "new"}], 1)
    with pytest.raises(FileNotFoundError):
        usage_records([logs, tmp_path / "missing.jsonl"])
