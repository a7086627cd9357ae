"""server.db.engine: PostgreSQL pools ping a connection only after it sat idle, and recover from a drop."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from server.db import engine as engine_mod
from tests.server.conftest import POSTGRES_URL


def _pings(engine: Any, monkeypatch: pytest.MonkeyPatch, fail: list[bool]) -> list[int]:
    calls: list[int] = []
    real = engine.dialect.do_ping

    def do_ping(dbapi_conn: Any) -> bool:
        calls.append(1)
        if fail and fail.pop(0):
            raise RuntimeError("gone")
        return bool(real(dbapi_conn))

    monkeypatch.setattr(engine.dialect, "do_ping", do_ping)
    return calls


def test_busy_connections_are_not_pinged_idle_ones_are(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    clock = [1000.0]
    monkeypatch.setattr(engine_mod.time, "monotonic", lambda: clock[0])
    engine_mod.ping_idle_connections(engine, idle_seconds=5.0)
    calls = _pings(engine, monkeypatch, [])
    for _ in range(3):
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        clock[0] += 1.0
    assert calls == []  # new, then reused within the idle window: no round trip
    clock[0] += 10.0
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    assert calls == [1]


def test_an_idle_connection_that_fails_its_ping_is_replaced(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    engine_mod.ping_idle_connections(engine, idle_seconds=0.0)
    with engine.connect() as conn:
        first = conn.connection.dbapi_connection
    calls = _pings(engine, monkeypatch, [True])
    with engine.connect() as conn:
        assert conn.execute(text("SELECT 1")).scalar() == 1
        assert conn.connection.dbapi_connection is not first
    assert calls == [1]


def test_postgres_engine_has_no_per_checkout_ping() -> None:
    engine = engine_mod.make_engine("postgresql+psycopg://u@127.0.0.1:1/none")
    assert engine.pool._pre_ping is False
    assert engine.pool._recycle == engine_mod.POOL_RECYCLE_SECONDS


postgres = pytest.mark.skipif(not POSTGRES_URL, reason="STEALTH_TEST_POSTGRES_URL is not set")


def _kill_backends(engine: Any, pids: list[int]) -> None:
    admin = engine_mod.make_engine(POSTGRES_URL or "")
    with admin.connect() as conn:
        for pid in pids:
            conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
        conn.commit()
    admin.dispose()


@postgres
def test_postgres_connection_dropped_while_idle_is_replaced_before_use() -> None:
    engine = engine_mod.make_engine(POSTGRES_URL or "")
    try:
        with engine.connect() as conn:
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        _kill_backends(engine, [pid])
        engine_mod.ping_idle_connections(engine, idle_seconds=0.0)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT pg_backend_pid()")).scalar_one() != pid
    finally:
        engine.dispose()


@postgres
def test_postgres_connection_dropped_in_use_invalidates_the_pool() -> None:
    """A drop seen by a statement fails that request (503 upstream) and the next checkout reconnects."""
    engine = engine_mod.make_engine(POSTGRES_URL or "")
    try:
        conns = [engine.connect() for _ in range(2)]
        pids = [c.execute(text("SELECT pg_backend_pid()")).scalar_one() for c in conns]
        for c in conns:
            c.rollback()
        conns[1].close()  # back in the pool, idle only moments: no ping at its next checkout
        _kill_backends(engine, pids)
        with pytest.raises(DBAPIError) as err:
            conns[0].execute(text("SELECT 1"))
        assert err.value.connection_invalidated
        conns[0].close()
        with engine.connect() as conn:  # the pooled one was invalidated with the pool: a fresh connection
            assert conn.execute(text("SELECT pg_backend_pid()")).scalar_one() not in pids
    finally:
        engine.dispose()
