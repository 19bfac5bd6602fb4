import errno
import json
import logging
import os
import threading

import pytest

from proxy.core.record import new_record
from proxy.sinks.health import SinkHealth
from proxy.sinks.metrics import Metrics
from proxy.sinks.usage_log import UsageWriter, usage_records

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


def test_writer_follows_a_rotation_after_which_the_path_names_a_new_file_already(tmp_path):
    """Rotated elsewhere and a fresh usage.jsonl made there (another writer's first line, a
    `touch`): the path exists, but it is not the writer's file; the next line goes to it."""
    from proxy.sinks.usage_log import rotate_usage
    writer = UsageWriter(tmp_path)
    writer.write(new_record("before", "/"))
    rotate_usage(tmp_path)
    (tmp_path / "usage.jsonl").write_bytes(b"")
    writer.write(new_record("after", "/"))
    writer.close()
    assert [json.loads(x)["rid"] for x in (tmp_path / "usage.jsonl").read_text().splitlines()] \
        == ["after"]
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


# ---------------------------------------------------------------- a disk that refuses writes
class Disk:
    """os.write for one descriptor, as a disk that fills: `room` bytes more fit (None: any), then
    every write fails with `err` (a short write first, when a line does not fit whole)."""

    def __init__(self, monkeypatch, writer, room=None, err=errno.ENOSPC):
        self.real, self.writer, self.room, self.err, self.calls = os.write, writer, room, err, 0
        monkeypatch.setattr(os, "write", self.write)

    def write(self, fd, data):
        if fd != self.writer._fd or self.room is None:
            return self.real(fd, data)
        self.calls += 1
        if self.room <= 0:
            raise OSError(self.err, os.strerror(self.err))
        n = self.real(fd, bytes(data[: self.room]))
        self.room -= n
        return n


def rec_n(i, pad=0):
    rec = new_record(f"r{i}", "/v1/messages")
    rec["model"] = "m" * pad
    return rec


def lost(metrics):
    return metrics.registry.get_sample_value("ccp_sink_write_errors_total", {"sink": "usage_log"})


def whole_lines(path):
    data = path.read_bytes()
    assert data == b"" or data.endswith(b"\n"), "the file ends mid-line"
    return [json.loads(line)["rid"] for line in data.splitlines()]


def test_a_full_disk_loses_whole_lines_counted_said_once_and_writing_resumes(tmp_path, monkeypatch,
                                                                             caplog):
    metrics = Metrics()
    writer = UsageWriter(tmp_path, health=SinkHealth("usage_log", metrics))
    assert writer.write(rec_n(0)) is not None
    disk = Disk(monkeypatch, writer, room=40)  # the next line fits 40 bytes, then nothing
    with caplog.at_level(logging.INFO, logger="ccp.sinks"):
        for i in range(1, 21):
            assert writer.write(rec_n(i)) is None  # never raised: the request is answered
        assert disk.calls == 21  # the short write (40 bytes) then the failed rest, then 19 more
        assert whole_lines(writer.path) == ["r0"]  # the 40 bytes were cut back off
        assert lost(metrics) == 20 and writer.health.degraded.startswith("ENOSPC")
        disk.room = None  # space again
        assert writer.write(rec_n(21)) is not None
        assert writer.write(rec_n(22)) is not None
    assert whole_lines(writer.path) == ["r0", "r21", "r22"]
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2, lines
    assert "sink usage_log (" in lines[0] and "cannot write (ENOSPC" in lines[0]
    assert "writes again" in lines[1] and "20 record(s) were lost" in lines[1]
    assert writer.health.degraded is None and lost(metrics) == 20 and writer.written == 3


def test_a_file_size_limit_is_the_same_loss(tmp_path, monkeypatch):
    writer = UsageWriter(tmp_path)
    Disk(monkeypatch, writer, room=10, err=errno.EFBIG)
    assert writer.write(rec_n(1)) is None
    assert writer.path.read_bytes() == b"" and writer.health.degraded.startswith("EFBIG")


def test_a_torn_line_that_cannot_be_cut_back_never_swallows_the_next_record(tmp_path, monkeypatch):
    writer = UsageWriter(tmp_path)
    writer.write(rec_n(0))
    disk = Disk(monkeypatch, writer, room=30)

    def no_truncate(fd, size):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(os, "ftruncate", no_truncate)
    assert writer.write(rec_n(1)) is None
    disk.room = None
    writer.write(rec_n(2))
    recs, bad = usage_records(writer.path)
    assert [r["rid"] for r in recs] == ["r0", "r2"] and bad == 1  # the torn start of r1, alone
    writer.write(rec_n(3))  # (the repair happens once)
    assert writer.path.read_bytes().count(b"\n") == 4


def test_a_file_left_mid_line_is_repaired_by_the_next_writer(tmp_path):
    (tmp_path / "usage.jsonl").write_bytes(b'{"rid": "a"}\n{"rid": "b", "tor')
    writer = UsageWriter(tmp_path)
    writer.write(rec_n(1))
    recs, bad = usage_records(tmp_path)
    assert [r["rid"] for r in recs] == ["a", "r1"] and bad == 1


def test_an_unopenable_path_is_counted_and_retried(tmp_path, monkeypatch):
    writer = UsageWriter(tmp_path)
    writer.path.unlink()  # moved away: the writer reopens; the folder refuses new files
    real_open = os.open

    def refuse(path, *a, **k):
        if str(path) == str(writer.path):
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_open(path, *a, **k)

    monkeypatch.setattr(os, "open", refuse)
    assert writer.write(rec_n(1)) is None and writer.write(rec_n(2)) is None
    assert writer.health.errors == 2 and writer.health.degraded.startswith("EACCES")
    monkeypatch.setattr(os, "open", real_open)
    assert writer.write(rec_n(3)) is not None
    assert whole_lines(writer.path) == ["r3"] and writer.health.degraded is None


def test_records_backwards_reads_the_newest_first_across_rotated_copies(tmp_path, monkeypatch):
    from proxy.sinks import usage_log
    monkeypatch.setattr(usage_log, "BACK_BLOCK", 7)  # lines cross many block boundaries
    (tmp_path / "usage.jsonl.2").write_text('{"rid": "a"}\n{"rid": "b"}\n')
    (tmp_path / "usage.jsonl.1").write_text('{"rid": "c"}\n\ngarbage\n{"rid": "d"}\n')
    (tmp_path / "usage.jsonl").write_text('{"rid": "e"}\n{"rid": "f"}')  # (no final newline)
    assert [r["rid"] for r in usage_log.records_backwards(tmp_path)] == list("fedcba")
    reader = usage_log.records_backwards(tmp_path)
    assert [next(reader)["rid"], next(reader)["rid"]] == ["f", "e"]  # a consumer may stop early
    assert list(usage_log.records_backwards(tmp_path / "none")) == []


def test_check_writable_is_one_config_error_for_a_folder_that_cannot_be_written(tmp_path):
    from proxy.core.parse import ConfigError
    from proxy.sinks.usage_log import check_writable
    check_writable(tmp_path / "new")  # made
    assert (tmp_path / "new").is_dir() and [p.name for p in (tmp_path / "new").iterdir()] == [
        "usage.jsonl"]
    blocker = tmp_path / "file"
    blocker.write_text("")  # a folder under a regular file cannot be made, even by root
    with pytest.raises(ConfigError) as exc:
        check_writable(blocker / "logs")
    assert "\n" not in str(exc.value) and f"CCP_LOGS_DIR={blocker / 'logs'} cannot be written" in \
        str(exc.value)


def test_check_writable_lets_a_full_disk_start(tmp_path, monkeypatch):
    from proxy.sinks.usage_log import check_writable

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "open", full)
    check_writable(tmp_path)  # no error: the shim starts and the sinks degrade
