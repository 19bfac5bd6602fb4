import json

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


def test_clean_record_masks_secrets_and_surrogates_in_every_string():
    from proxy.core.redact import clean_record
    secret = "sess-token-0123456789"
    rec = {"rid": "r1", "model": f"claude-{secret}", "path": f"/v1/{secret}/x", "status": 200,
           "client_session": f"\ud800{secret}", "rewrites": [f"model:{secret}"], "sse": {"k": secret},
           "reason": None}
    clean_record(rec, [secret, "short"])
    text = json.dumps(rec, ensure_ascii=False)
    assert secret not in text and text.count("[REDACTED…6789]") == 5
    assert rec["client_session"].startswith("\\ud800") and rec["status"] == 200 and rec["rid"] == "r1"
    rec["client_session"].encode("utf-8")


def test_the_log_filter_masks_messages_and_tracebacks():
    import logging

    from proxy.core.redact import REQUEST_SECRETS, RedactingFilter
    secret, own = "admin-token-0123456789", "client-key-abcdefgh"
    handler = logging.Handler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.addFilter(RedactingFilter(lambda: [secret, *REQUEST_SECRETS.get()]))
    lines = []
    handler.emit = lambda record: lines.append(handler.format(record))
    log = logging.getLogger("test.redact")
    log.addHandler(handler)
    log.propagate = False
    try:
        token = REQUEST_SECRETS.set([own])
        log.warning("model %s from %s", secret, own)
        try:
            raise KeyError(f"no {secret}")
        except KeyError:
            log.exception("failed")
        REQUEST_SECRETS.reset(token)
        log.warning("no request: %s", own)
    finally:
        log.removeHandler(handler)
    assert secret not in "".join(lines[:2]) and own not in "".join(lines[:2])
    assert "Traceback" in lines[1] and "[REDACTED…6789]" in lines[1]
    assert lines[2] == f"no request: {own}"  # (another request's credential is not known)


def test_a_secret_never_shows_its_value_in_a_repr_a_str_or_a_format():
    from proxy.core.redact import Secret
    value = "sk-live-0123456789abcdef"
    secret = Secret(value)
    for shown in (repr(secret), str(secret), f"{secret}", f"{secret!r}", repr([secret])):
        assert value not in shown and value[-6:] not in shown, shown
    assert secret.reveal() == value and repr(Secret("")) == "Secret('')"
