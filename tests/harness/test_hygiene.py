import pytest

from harness.hygiene import check_anthropic_calls, check_zai_calls

pytestmark = pytest.mark.quick


def test_zai_calls_pass_with_only_the_zai_key():
    assert check_zai_calls([{"x-api-key": "zk"}], "zk", ["ant"]).ok
    assert check_zai_calls([{"authorization": "Bearer zk"}], "zk", ["ant"], "authorization").ok


@pytest.mark.parametrize("headers, mode", [
    ({"x-api-key": "zk", "authorization": "Bearer ant"}, "x-api-key"),
    ({"authorization": "Bearer zk"}, "x-api-key"),
    ({"x-api-key": "zk"}, "authorization"),
    ({}, "x-api-key"),
])
def test_zai_calls_fail(headers, mode):
    result = check_zai_calls([headers], "zk", ["ant"], mode)
    assert not result.ok and "call 0" in result.detail


def test_anthropic_calls():
    assert check_anthropic_calls([{"authorization": "Bearer client"}], "zk").ok
    assert not check_anthropic_calls([{"x-api-key": "zk"}], "zk").ok
    assert not check_anthropic_calls([{"authorization": "Bearer sess"}], "zk", ["sess"]).ok
    assert not check_anthropic_calls([{}], "zk").ok
