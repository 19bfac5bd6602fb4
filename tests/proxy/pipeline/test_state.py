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
