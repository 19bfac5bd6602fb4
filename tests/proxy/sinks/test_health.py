import errno
import logging
import sqlite3

import pytest

from proxy.sinks.health import SINKS, SinkHealth, Sinks, failure_kind, write_whole
from proxy.sinks.metrics import Metrics

pytestmark = pytest.mark.quick


def errors_of(metrics: Metrics, sink: str) -> float:
    return metrics.registry.get_sample_value("ccp_sink_write_errors_total", {"sink": sink})


def test_every_sink_has_a_zero_series_from_the_start():
    metrics = Metrics()
    assert [errors_of(metrics, s) for s in SINKS] == [0.0] * 5
    assert set(SINKS) == {"usage_log", "store", "trajectory", "partial", "tee"}


def test_failure_kind_is_the_errno_name_or_the_type():
    assert failure_kind(OSError(errno.ENOSPC, "No space left on device")) == "ENOSPC"
    assert failure_kind(PermissionError(errno.EACCES, "Permission denied")) == "EACCES"
    assert failure_kind(sqlite3.OperationalError("database or disk is full")) == "OperationalError"


def test_one_line_per_kind_counted_each_time_and_one_line_on_recovery(caplog):
    metrics = Metrics()
    health = SinkHealth("tee", metrics, where="/logs/tee")
    with caplog.at_level(logging.INFO, logger="ccp.sinks"):
        for _ in range(50):
            health.failed(OSError(errno.ENOSPC, "No space left on device"))
        health.failed(OSError(errno.EROFS, "Read-only file system"), n=2)  # a new kind: said
        health.failed(None)  # the same failure still: counted only
        assert health.view() == {"ok": False, "write_errors": 53, "since": health.since,
                                 "error": "EROFS: [Errno 30] Read-only file system", "lost": 53}
        health.ok()
        health.ok()  # (once)
        health.failed(OSError(errno.ENOSPC, "No space left on device"))  # failing again: said again
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 4, lines
    assert "sink tee (/logs/tee) cannot write (ENOSPC" in lines[0]
    assert 'ccp_sink_write_errors_total{sink="tee"}' in lines[0]
    assert "(EROFS" in lines[1]
    assert "writes again" in lines[2] and "53 record(s) were lost" in lines[2]
    assert "(ENOSPC" in lines[3]
    assert errors_of(metrics, "tee") == 54 and health.errors == 54 and health.lost == 1


def test_report_names_the_degraded_sinks():
    sinks = Sinks(Metrics())
    assert sinks.report()["status"] == "ok" and sinks.report()["degraded"] == []
    sinks["usage_log"].failed(OSError(errno.ENOSPC, "No space left on device"))
    sinks["store"].failed(sqlite3.OperationalError("database or disk is full"))
    report = sinks.report()
    assert report["status"] == "degraded" and report["degraded"] == ["usage_log", "store"]
    assert report["sinks"]["usage_log"]["error"].startswith("ENOSPC")
    assert report["sinks"]["tee"] == {"ok": True, "write_errors": 0}
    sinks["usage_log"].ok()
    assert sinks.report()["degraded"] == ["store"]


def test_the_store_says_it_on_its_own_logger(caplog):
    with caplog.at_level(logging.ERROR):
        SinkHealth("store").failed(OSError(errno.ENOSPC, "full"))
    [line] = caplog.records
    assert line.name == "ccp.store" and "JSONL only" in line.getMessage()


def test_write_whole_leaves_no_half_file_and_no_tmp(tmp_path, monkeypatch):
    target = tmp_path / "a.json"
    assert write_whole(target, b"whole") == target and target.read_bytes() == b"whole"

    import builtins
    real_open = builtins.open

    class Full:
        def __init__(self, fh):
            self.fh = fh

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

        def write(self, data):
            self.fh.write(data[: len(data) // 2])  # half of it lands, then the disk is full
            self.fh.flush()
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(builtins, "open", lambda p, *a, **k: Full(real_open(p, *a, **k)))
    with pytest.raises(OSError, match="No space"):
        write_whole(tmp_path / "b.json", b"0123456789")
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]
