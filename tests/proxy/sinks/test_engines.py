import pytest

from proxy.sinks.engines import open_engine, open_store
from proxy.sinks.store import SqliteEngine

pytestmark = pytest.mark.quick


def test_a_path_or_a_sqlite_url_is_the_sqlite_engine(tmp_path):
    assert isinstance(open_engine(tmp_path / "a.sqlite3"), SqliteEngine)
    engine = open_engine(f"sqlite://{tmp_path}/b.sqlite3")
    assert isinstance(engine, SqliteEngine) and engine.where == f"{tmp_path}/b.sqlite3"
    store = open_store(tmp_path / "c.sqlite3", instance="x")
    assert store.engine.name == "sqlite" and store.instance == "x"


def test_a_postgresql_url_is_the_postgresql_engine():
    pytest.importorskip("psycopg")
    engine = open_engine("postgresql://ccp:pw@127.0.0.1:1/none")
    assert engine.name == "postgresql" and engine.where == "postgresql://ccp:***@127.0.0.1:1/none"
    engine.close()  # nothing was opened: no connection is made before the first use
