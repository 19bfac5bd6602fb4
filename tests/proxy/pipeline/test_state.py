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
