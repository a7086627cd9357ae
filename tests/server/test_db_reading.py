"""Database.reading: reads outside a transaction (no BEGIN/COMMIT round trips); the pooled connection
goes back to transactional use afterwards."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from server.db.engine import Database


def _autocommit(dbapi: Any) -> bool:
    if type(dbapi).__module__.startswith("psycopg"):
        return bool(dbapi.autocommit)
    return dbapi.isolation_level is None  # sqlite3: no implicit BEGIN


def test_reading_runs_outside_a_transaction_and_the_pool_resets(database: Database) -> None:
    with database.reading() as session:
        assert session.execute(text("SELECT 1")).scalar() == 1
        dbapi = session.connection().connection.dbapi_connection
        assert _autocommit(dbapi)
        if database.backend == "postgresql":
            assert dbapi.info.transaction_status.name == "IDLE"  # no BEGIN was sent
    with database.session() as session:
        session.execute(text("SELECT 1"))
        dbapi = session.connection().connection.dbapi_connection
        assert not _autocommit(dbapi)
        if database.backend == "postgresql":
            assert dbapi.info.transaction_status.name == "INTRANS"
