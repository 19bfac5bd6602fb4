"""The fake credentials the harness uses with mock upstreams (fixtures/keys/test-keys.json)."""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

KEYS_FILE = Path(__file__).resolve().parent.parent / "fixtures" / "keys" / "test-keys.json"


@lru_cache(maxsize=1)
def test_keys() -> dict[str, str]:
    data = json.loads(KEYS_FILE.read_text())
    return {k: v for k, v in data.items() if not k.startswith("_")}


def lane_env(anthropic_url: str, zai_url: str) -> dict[str, str]:
    """Shim environment pointing both lanes at mock upstreams, with the fake lane credentials."""
    keys = test_keys()
    return {"CCP_ANTHROPIC_BASE_URL": anthropic_url, "CCP_ZAI_BASE_URL": zai_url,
            "ZAI_API_KEY": keys["ZAI_API_KEY"], "ANTHROPIC_AUTH_TOKEN": keys["ANTHROPIC_AUTH_TOKEN"]}
