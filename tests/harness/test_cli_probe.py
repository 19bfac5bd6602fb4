import pytest

from harness.cli_probe import (
    PLACEHOLDER_TOKEN,
    _parse_head,
    cli_env,
    cli_probe,
    parse_cli_output,
)

pytestmark = pytest.mark.quick


def test_parse_cli_output_takes_the_last_json_object():
    out = 'warming up\n{"type":"result","result":"A2S_OK","is_error":false,"session_id":"s1"}\n'
    assert parse_cli_output(out)["result"] == "A2S_OK"
    assert parse_cli_output("no json here") == {}
    assert parse_cli_output('{"a":1}\n{broken') == {"a": 1}


def test_cli_env_is_what_an_operator_sets():
    env = cli_env("http://127.0.0.1:1", "/tmp/h")
    assert env["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:1" and env["HOME"] == "/tmp/h"
    assert env["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] == "1"
    assert env["CLAUDE_CODE_MAX_RETRIES"] == "0"
    assert env["ANTHROPIC_AUTH_TOKEN"] == PLACEHOLDER_TOKEN and "ANTHROPIC_API_KEY" not in env
    keyed = cli_env("http://x", "/h", api_key="k")
    assert keyed["ANTHROPIC_API_KEY"] == "k" and "ANTHROPIC_AUTH_TOKEN" not in keyed


def test_missing_binary_is_a_clear_error(tmp_path):
    res = cli_probe("http://127.0.0.1:9", "haiku", binary=str(tmp_path / "nope"))
    assert not res.ok and "cannot run" in res.error


def test_parse_head():
    head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nx-ccp-lane: zai\r\n\r\n"
    assert _parse_head(head) == {"content-type": "text/event-stream", "x-ccp-lane": "zai"}
