"""Engine, sessions and migrations."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# PostgreSQL: a transaction that adds outbox work notifies this channel as it commits, so `stealth worker`
# processes waiting on it wake at once instead of at their next poll (server.webhooks.worker).
OUTBOX_CHANNEL = "stealth_outbox"
_WAKE = "stealth_wake_outbox"


def wake_outbox(session: Session) -> None:
    """Say that this transaction adds webhook work: its commit notifies the workers (PostgreSQL)."""
    session.info[_WAKE] = True


def _notify_on_commit(session: Session) -> None:
    if session.info.pop(_WAKE, False):
        session.execute(text(f"NOTIFY {OUTBOX_CHANNEL}"))  # sent by PostgreSQL only if the commit succeeds


def _forget_on_rollback(session: Session) -> None:
    session.info.pop(_WAKE, None)


# PostgreSQL: a pooled connection is pinged at checkout only after it sat idle this long. A busy pool then
# makes no extra round trip per request (pool_pre_ping pinged every checkout); a connection that was idle
# through an outage or a server-side timeout is still checked, and replaced, before a request uses it. A
# connection that breaks while in use raises a disconnect error: SQLAlchemy invalidates the whole pool
# (every connection older than the error is replaced at its next checkout) and the request answers 503.
IDLE_PING_SECONDS = 5.0
POOL_RECYCLE_SECONDS = 1800
_CHECKED_IN_AT = "stealth_checked_in_at"


def ping_idle_connections(engine: Engine, idle_seconds: float = IDLE_PING_SECONDS) -> None:
    """Ping a pooled connection at checkout when it was idle for more than ``idle_seconds``."""

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_conn: Any, record: Any) -> None:
        if record is not None:
            record.info[_CHECKED_IN_AT] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get(_CHECKED_IN_AT)
        if since is None or time.monotonic() - since <= idle_seconds:
            return  # a new connection, or one in use moments ago
        try:
            alive = engine.dialect.do_ping(dbapi_conn)
        except Exception as exc:
            raise DisconnectionError("idle connection failed its ping") from exc
        if not alive:
            raise DisconnectionError("idle connection failed its ping")


def normalize_url(url: str) -> str:
    """Accept postgres:// and postgresql:// and use psycopg 3."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def make_engine(url: str, schema: str | None = None) -> Engine:
    url = normalize_url(url)
    parsed = make_url(url)
    # Error messages never carry SQL parameters (they may be PHI): see DECISIONS L-001.
    kwargs: dict[str, Any] = {"future": True, "hide_parameters": True}
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        engine = create_engine(url, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    connect_args: dict[str, Any] = {"connect_timeout": 5}
    if schema:
        connect_args["options"] = f"-csearch_path={schema}"
    engine = create_engine(
        url,
        pool_recycle=POOL_RECYCLE_SECONDS,
        pool_size=10,
        max_overflow=20,
        pool_timeout=5,
        connect_args=connect_args,
        **kwargs,
    )
    ping_idle_connections(engine)
    return engine


class Database:
    """One engine and its session factory."""

    def __init__(self, url: str, schema: str | None = None) -> None:
        self.url = normalize_url(url)
        self.schema = schema
        self.engine = make_engine(self.url, schema=schema)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False, future=True)
        self._reads = sessionmaker(
            self.engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False, future=True
        )
        if self.backend == "postgresql":
            event.listen(self.sessions, "before_commit", _notify_on_commit)
            event.listen(self.sessions, "after_rollback", _forget_on_rollback)

    def psycopg_conninfo(self) -> str:
        """The URL as plain psycopg takes it (PostgreSQL)."""
        return make_url(self.url).set(drivername="postgresql").render_as_string(hide_password=False)

    @property
    def backend(self) -> str:
        return self.engine.dialect.name

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on any error."""
        with self.sessions() as session, session.begin():
            yield session

    @contextlib.contextmanager
    def connect(self) -> Iterator[Connection]:
        """A connection for Core reads, no ORM session: its transaction is rolled back when it closes."""
        with self.engine.connect() as conn:
            yield conn

    @contextlib.contextmanager
    def reading(self) -> Iterator[Session]:
        """A session for reads only, outside any transaction: each statement sees what was committed when it
        started (as under READ COMMITTED, PostgreSQL's default), and there is no BEGIN / COMMIT round trip
        around a one-statement read. Nothing written through it is undone on error: never write with it."""
        with self._reads() as session:
            yield session

    def alembic_config(self) -> Config:
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        cfg.set_main_option("sqlalchemy.url", self.url.replace("%", "%%"))
        cfg.attributes["engine"] = self.engine
        return cfg

    def migrate(self) -> None:
        """Create or upgrade the schema to the latest migration."""
        command.upgrade(self.alembic_config(), "head")

    def dispose(self) -> None:
        self.engine.dispose()
