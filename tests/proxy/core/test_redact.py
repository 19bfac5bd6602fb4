import pytest

from proxy.core.redact import mask, redact, redact_text

pytestmark = pytest.mark.quick

SECRET = "sk-ant-test-token-5be04d17"


def test_secrets_inside_strings_are_masked():
    data = {"messages": [{"content": f"my key is {SECRET}!"}], "n": 3,
            "nested": [f"Bearer {SECRET}", None]}
    out = redact(data, [SECRET])
    assert SECRET not in repr(out)
    assert out["messages"][0]["content"] == f"my key is {mask(SECRET)}!"
    assert mask(SECRET).endswith("4d17]") and out["n"] == 3
    assert data["messages"][0]["content"].endswith("!") and SECRET in data["messages"][0]["content"]


def test_credential_keys_are_masked_whatever_the_value():
    out = redact({"headers": {"Authorization": "Bearer unknown-token-xyz", "x-api-key": "abc"}}, [])
    assert "unknown-token-xyz" not in repr(out) and "abc" not in repr(out)


def test_short_strings_are_not_treated_as_secrets():
    assert redact_text("the cat sat", ["cat", ""]) == "the cat sat"
