"""harness.postgres: the server is found, started on a free port, restarted and removed."""
import pytest

from harness import postgres
from harness.postgres import SKIP_REASON, PostgresServer, find_bin_dir, free_port


def test_free_port_is_a_port():
    assert 1024 <= free_port() <= 65535


def test_skip_reason_is_one_line():
    assert "\n" not in SKIP_REASON and "postgresql" in SKIP_REASON


def test_without_the_programs_the_server_says_why(monkeypatch):
    monkeypatch.setattr(postgres, "find_bin_dir", lambda: None)
    with pytest.raises(FileNotFoundError, match="not installed"):
        PostgresServer()


@pytest.mark.store
def test_start_stop_start_and_close(make_postgres):
    import psycopg
    assert find_bin_dir() is not None
    server = make_postgres()
    root = server.root
    url = server.database("one")
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE t (x int)")
        conn.execute("INSERT INTO t VALUES (1)")
    server.stop()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=2).close()
    server.start()  # the same cluster, the same port
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT x FROM t").fetchone() == (1,)
    server.close()
    assert not root.exists()
