import json
import time

import pytest

from proxy.cli.logview import follow, format_line, logs_main

pytestmark = pytest.mark.quick


RECORDS = [
    {"ts": "2026-11-25T13:00:00.123Z", "rid": "9f2c01ab-000001", "model": "claude-haiku-4-5",
     "lane": "zai", "decision": "to_zai", "op": "stream", "status": 200, "err_type": None,
     "latency_ms": 41.2, "ttfb_ms": 3.9, "in_tokens": 14, "out_tokens": 9,
     "sse": {"events": 15, "bytes": 2391, "complete": True}},
    {"ts": "2026-11-25T13:00:01.000Z", "rid": "9f2c01ab-000002", "model": "claude-sonnet-4-5",
     "lane": "anthropic", "decision": "to_anth", "op": "nonstream", "status": 502,
     "err_type": "net", "latency_ms": 12.0, "ttfb_ms": None, "in_tokens": None, "out_tokens": None,
     "sse": None},
    {"ts": "2026-11-25T13:00:02.000Z", "rid": "9f2c01ab-000003", "model": "claude-haiku-4-5",
     "lane": "zai", "decision": "to_zai", "op": "stream", "status": 200, "err_type": "idle_timeout",
     "latency_ms": 120000.0, "ttfb_ms": 5.0, "in_tokens": 3, "out_tokens": 1,
     "sse": {"events": 4, "complete": False}},
]


def text_of(line: str) -> str:
    return "".join(text for text, _ in format_line(line))


@pytest.fixture
def logs(tmp_path, monkeypatch):
    monkeypatch.setenv("CCP_LOGS_DIR", str(tmp_path))
    return tmp_path


# ------------------------------------------------------------------ env and banner


def test_format_of_a_complete_stream():
    line = text_of(json.dumps(RECORDS[0]))
    assert line.startswith("11-25 13:00:00.123 9f2c01ab-000001 zai ")
    for part in ("to_zai", "claude-haiku-4-5", "stream", "200 -", "41ms ttfb 4ms", "tok 14/9",
                 "sse 15ev complete"):
        assert part in line


def test_format_of_failures_and_broken_streams():
    assert "502 net 12ms ttfb - tok -/- sse -" in text_of(json.dumps(RECORDS[1]))
    assert "idle_timeout" in text_of(json.dumps(RECORDS[2]))
    assert "sse 4ev INCOMPLETE" in text_of(json.dumps(RECORDS[2]))
    assert text_of("{not json").startswith("(unreadable) {not json")
    assert text_of("{}").startswith("- - -")  # every field may be missing


def test_styles_mark_lanes_and_errors():
    styles = dict((text.strip().split()[0], style) for text, style in format_line(json.dumps(RECORDS[1]))
                  if text.strip())
    assert styles["anthropic"] == "magenta" and styles["502"] == "bold red"


def write_usage(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def test_logs_last_n(logs, capsys):
    write_usage(logs / "usage.jsonl", RECORDS)
    assert logs_main(["-n", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[2] for line in out] == ["9f2c01ab-000002", "9f2c01ab-000003"]
    assert logs_main([]) == 0 and len(capsys.readouterr().out.splitlines()) == 3
    assert logs_main(["-n", "1", "--raw"]) == 0
    assert json.loads(capsys.readouterr().out) == RECORDS[2]


def test_logs_without_a_file(logs, capsys):
    assert logs_main([]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and "no usage records yet" in captured.err


def test_logs_follow_stops_by_itself(logs, capsys):
    write_usage(logs / "usage.jsonl", RECORDS[:1])
    started = time.monotonic()
    assert logs_main(["-n", "5", "--follow", "--max-seconds", "0.3"]) == 0
    assert time.monotonic() - started < 5
    assert len(capsys.readouterr().out.splitlines()) == 1


def test_follow_survives_rotation_and_recreation(tmp_path):
    path = tmp_path / "usage.jsonl"
    path.write_text("old\n")
    lines = follow(path, path.stat().st_size, time.monotonic() + 10)
    with open(path, "a") as fh:
        fh.write("a\nb-par")
    assert next(lines) == "a\n"
    with open(path, "a") as fh:
        fh.write("tial\n")
    path.rename(tmp_path / "usage.jsonl.1")  # rotated: the old file's tail is not lost
    path.write_text("ccc\n")
    assert next(lines) == "b-partial\n"
    assert next(lines) == "ccc\n"
    path.unlink()
    path.write_text("d\n")  # recreated smaller than where we were
    assert next(lines) == "d\n"
    lines.close()

