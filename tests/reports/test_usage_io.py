"""reports.usage_io: reading usage files, folders with rotated files, and torn lines."""
import json

import pytest

from reports.usage_io import (
    COLUMNS,
    SSE_COLUMNS,
    read_records,
    read_usage,
    rotated_copies,
    usage_files,
)

pytestmark = pytest.mark.quick


def rec(rid, **kw):
    base = {"ts": "2026-11-25T13:00:00.123Z", "rid": rid, "lane": "anthropic",
            "provider": "anthropic",
            "decision": "to_anth", "op": "nonstream", "status": 200, "err_type": None,
            "reason": None, "sse": None, "model": "claude-sonnet-4-5"}
    base.update(kw)
    return base


def write(path, *lines):
    path.write_text("".join(
        (line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


def test_folder_reads_all_rotated_files_oldest_first(tmp_path):
    write(tmp_path / "usage.jsonl", rec("r-current"))
    for i in range(1, 6):
        write(tmp_path / f"usage.jsonl.{i}", rec(f"r-rot{i}"))
    write(tmp_path / "usage.jsonl.6", rec("r-too-old"))  # beyond the kept five
    write(tmp_path / "other.jsonl", rec("r-other"))
    records, bad = read_records(tmp_path)
    assert [r["rid"] for r in records] == ["r-rot5", "r-rot4", "r-rot3", "r-rot2", "r-rot1",
                                          "r-current"]
    assert bad == 0


def test_current_log_only_and_the_rotated_copies_named(tmp_path):
    write(tmp_path / "usage.jsonl", rec("r-current"))
    write(tmp_path / "usage.jsonl.1", rec("r-rot1"))
    write(tmp_path / "usage.jsonl.3", rec("r-rot3"))
    assert usage_files(tmp_path, rotated=False) == [tmp_path / "usage.jsonl"]
    assert rotated_copies(tmp_path) == [tmp_path / "usage.jsonl.3", tmp_path / "usage.jsonl.1"]
    records, _ = read_records(tmp_path, rotated=False)
    assert [r["rid"] for r in records] == ["r-current"]
    assert list(read_usage(tmp_path, rotated=False)["rid"]) == ["r-current"]
    assert usage_files(tmp_path / "usage.jsonl.1", rotated=False) == [tmp_path / "usage.jsonl.1"]
    (tmp_path / "usage.jsonl").unlink()
    assert usage_files(tmp_path, rotated=False) == [] and rotated_copies(tmp_path / "nope") == []


def test_folder_with_gaps_in_rotation(tmp_path):
    write(tmp_path / "usage.jsonl.2", rec("old"))
    write(tmp_path / "usage.jsonl", rec("new"))
    assert [f.name for f in usage_files(tmp_path)] == ["usage.jsonl.2", "usage.jsonl"]


def test_torn_and_non_object_lines_are_bad_blank_lines_are_not(tmp_path):
    f = write(tmp_path / "u.jsonl", rec("a"), "", "   ", '{"rid": "torn", "lane": "an', "[1, 2]",
              "42", rec("b"))
    records, bad = read_records(f)
    assert [r["rid"] for r in records] == ["a", "b"]
    assert bad == 3


def test_torn_utf8_tail_counts_as_bad(tmp_path):
    f = tmp_path / "u.jsonl"
    f.write_bytes(json.dumps(rec("a")).encode() + b"\n" + '{"model": "é'.encode()[:-1])
    records, bad = read_records(f)
    assert len(records) == 1 and bad == 1


def test_files_and_folders_mix(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    write(logs / "usage.jsonl", rec("a"))
    extra = write(tmp_path / "more.jsonl", rec("b"))
    records, _ = read_records([logs, str(extra)])
    assert [r["rid"] for r in records] == ["a", "b"]


def test_missing_path_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        read_records([tmp_path / "nope.jsonl"])


def test_read_usage_flattens_sse_and_carries_bad_lines(tmp_path):
    f = write(tmp_path / "usage.jsonl",
              rec("s", op="stream", reason="streaming", header_mode="x-api-key", lane="zai",
                  sse={"events": 9, "bytes": 1234, "duration_ms": 10.2, "complete": True},
                  cache_read_input_tokens=7, cache_creation_input_tokens=3),
              rec("n"), "garbage")
    df = read_usage(f)
    assert list(df.columns) == list(COLUMNS)
    assert "sse" not in df.columns
    assert df.attrs["bad_lines"] == 1
    s = df[df["rid"] == "s"].iloc[0]
    assert (s["sse_events"], s["sse_bytes"], s["sse_duration_ms"]) == (9, 1234, 10.2)
    assert s["sse_complete"] is True or s["sse_complete"] == True  # noqa: E712
    assert s["header_mode"] == "x-api-key"
    assert (s["cache_read_tokens"], s["cache_creation_tokens"]) == (7, 3)
    n = df[df["rid"] == "n"].iloc[0]
    assert n[list(SSE_COLUMNS)].isna().all()


def test_empty_input_gives_empty_frame_with_columns(tmp_path):
    write(tmp_path / "usage.jsonl", "", "")
    df = read_usage(tmp_path)
    assert df.empty and list(df.columns) == list(COLUMNS)
    assert df.attrs["bad_lines"] == 0
    empty_dir = tmp_path / "empty"
    empty_dir.mkdir()
    assert list(read_usage(empty_dir).columns) == list(COLUMNS)
