import pytest

from proxy.config.load import load_settings
from proxy.pipeline.state import ShimState

pytestmark = pytest.mark.quick


def test_rids_are_unique_and_foreign_keys_exclude_anthropic():
    state = ShimState(load_settings({"ZAI_API_KEY": "zai-key-123456", "ANTHROPIC_AUTH_TOKEN": "ant-tok-123456"}),
                      None)
    rids = {state.new_rid() for _ in range(100)}
    assert len(rids) == 100
    assert "zai-key-123456" in state.foreign_keys and "ant-tok-123456" not in state.foreign_keys


def test_record_never_raises_for_a_full_disk_and_the_store_still_gets_the_record(tmp_path,
                                                                                 monkeypatch):
    import errno
    import os

    from proxy.core.record import new_record
    state = ShimState(load_settings({"CCP_LOGS_DIR": str(tmp_path)}), None)
    writer = state.open_writer()
    store = state.open_store()
    real = os.write

    def full(fd, data):
        if fd == writer._fd:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, data)

    monkeypatch.setattr(os, "write", full)
    rec = new_record(state.new_rid(), "/v1/messages")
    rec.update(model="claude-haiku-4-5", lane="zai", status=200, in_tokens=3, out_tokens=4)
    state.record(rec)  # no OSError: the client keeps the answer it got
    assert state.sinks.report()["degraded"] == ["usage_log"]
    assert state.metrics.registry.get_sample_value("ccp_sink_write_errors_total",
                                                   {"sink": "usage_log"}) == 1
    assert store.flush(5) and [s["rid"] for s in store.samples()] == [rec["rid"]]
    assert (tmp_path / "usage.jsonl").read_bytes() == b""
    store.close()
    writer.close()


def test_open_store_imports_what_a_crash_left_only_in_the_log(tmp_path):
    from proxy.core.record import new_record, utc_timestamp
    settings = load_settings({"CCP_LOGS_DIR": str(tmp_path)})
    first = ShimState(settings, None)
    first.open_writer()
    for i in range(3):  # written to the log; the store never opened (as if killed before commit)
        rec = new_record(first.new_rid(), "/v1/messages")
        rec.update(ts=utc_timestamp(), model="claude-haiku-4-5", status=200, in_tokens=i)
        first.writer.write(rec)
    first.writer.close()
    second = ShimState(settings, None)
    store = second.open_store()
    assert sorted(s["rid"] for s in store.samples()) == sorted(r["rid"] for r in
                                                               _log_records(tmp_path))
    store.close()


def _log_records(folder):
    from proxy.sinks.usage_log import usage_records
    return usage_records(folder)[0]


def test_a_record_is_written_with_every_secret_masked(tmp_path):
    import json

    from proxy.core.record import new_record
    state = ShimState(load_settings({"CCP_LOGS_DIR": str(tmp_path), "CCP_ADMIN_TOKEN": "admin-tok-123456",
                                     "CCP_PERSIST": "0"}), None)
    state.open_writer()
    state.sessions.register("sess-tok-123456", "sbx", "task")
    rec = new_record(state.new_rid(), "/v1/messages/admin-tok-123456")
    rec["model"] = "sess-tok-123456\ud800"
    rec["client_session"] = "client-key-123456"
    from proxy.core.redact import REQUEST_SECRETS
    token = REQUEST_SECRETS.set(["client-key-123456"])  # (as prepare.read() sets it)
    try:
        state.record(rec)
    finally:
        REQUEST_SECRETS.reset(token)
    line = (tmp_path / "usage.jsonl").read_text()
    for secret in ("admin-tok-123456", "sess-tok-123456", "client-key-123456"):
        assert secret not in line
    assert json.loads(line)["model"] == "[REDACTED…3456]\\ud800"
