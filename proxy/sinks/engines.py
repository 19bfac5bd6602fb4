"""The usage store's engine for a target (`CCP_STORE_URL`): SQLite (proxy.sinks.store, the default)
or PostgreSQL (proxy.sinks.store_pg, imported only for a `postgresql://` URL: the SQLite store needs
no psycopg). Above both modules, so that neither imports the other's choice."""

from __future__ import annotations

import os

from proxy.sinks.store import SqliteEngine, UsageStore, is_postgres


def open_engine(target: str | os.PathLike):
    """The engine of a store target: a `postgresql://` URL, a `sqlite:///` URL or a file path."""
    if is_postgres(target):
        from proxy.sinks.store_pg import PgEngine

        return PgEngine(str(target))
    return SqliteEngine(target)


def open_store(target: str | os.PathLike, **kw) -> UsageStore:
    """A UsageStore on the target's engine (`kw`: UsageStore's own arguments)."""
    return UsageStore(target, engine=open_engine(target), **kw)


__all__ = ["open_engine", "open_store"]
