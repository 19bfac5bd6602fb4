import pytest

from proxy.sinks.partials import clean_partials, list_partials, main, write_partial

pytestmark = pytest.mark.quick


def test_write_list_clean(tmp_path, capsys, monkeypatch):
    path = write_partial(tmp_path, "r-1", [b"event: a\n", b"data: sk-secret-key-999\n"], ["sk-secret-key-999"])
    assert path.name == "r-1.partial"
    assert b"sk-secret-key-999" not in path.read_bytes() and path.read_bytes().startswith(b"event: a\n")
    write_partial(tmp_path, "r-2", [b"x"], [])
    assert [p["rid"] for p in list_partials(tmp_path)] == ["r-1", "r-2"]
    assert clean_partials(tmp_path, older_than=3600) == 0
    monkeypatch.setenv("CCP_LOGS_DIR", str(tmp_path))
    assert main([]) == 0 and "r-1" in capsys.readouterr().out
    assert main(["clean"]) == 0 and list_partials(tmp_path) == []
    assert "removed 2" in capsys.readouterr().out
