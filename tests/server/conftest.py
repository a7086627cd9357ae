"""Fixtures for the sandbox tests.

Databases: SQLite always; PostgreSQL too when STEALTH_TEST_POSTGRES_URL is set (one fresh schema per
xdist worker, dropped at the end). Redis rate-limiter tests run when STEALTH_TEST_REDIS_URL is set
(a per-test key prefix). Every test creates its own partners, so tests never see each other's data.
"""

from __future__ import annotations

import contextlib
import os
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

warnings.filterwarnings("ignore", message=".*httpx2.*")

from starlette.testclient import TestClient  # noqa: E402

from server.app import build_state, create_app  # noqa: E402
from server.config import DEFAULT_SPEC_DIR, Settings  # noqa: E402
from server.db.engine import Database  # noqa: E402
from server.ratelimit import MemoryRateLimiter, RateLimiter  # noqa: E402
from server.services.partners import Credentials, create_partner  # noqa: E402
from server.spec import load_spec  # noqa: E402
from server.state import AppState  # noqa: E402

POSTGRES_URL = os.environ.get("STEALTH_TEST_POSTGRES_URL")
REDIS_URL = os.environ.get("STEALTH_TEST_REDIS_URL")
DB_PARAMS = ["sqlite"] + (["postgres"] if POSTGRES_URL else [])
SECRET_KEY = Fernet.generate_key().decode()
CLIENT_IP = "127.0.0.1"


@pytest.fixture(scope="session")
def spec_document() -> dict[str, Any]:
    allow_missing = os.environ.get("STEALTH_SPEC_ALLOW_MISSING", "") == "1"
    return load_spec(DEFAULT_SPEC_DIR, allow_missing=allow_missing)


@contextlib.contextmanager
def scratch_schema(prefix: str, *, migrate: bool = True) -> Iterator[tuple[Database, str]]:
    """A PostgreSQL schema of its own (``prefix`` + a random suffix), migrated unless ``migrate`` is
    False, dropped afterwards: (its database, its name)."""
    import psycopg

    assert POSTGRES_URL
    schema = f"{prefix}{uuid.uuid4().hex[:10]}".lower()
    plain = POSTGRES_URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    db = Database(POSTGRES_URL, schema=schema)
    try:
        if migrate:
            db.migrate()
        yield db, schema
    finally:
        db.dispose()
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _pg_schema_db(worker_id: str) -> Iterator[Database]:
    with scratch_schema(f"stealth_t_{worker_id}_{os.getpid()}_") as (db, _schema):
        yield db


@pytest.fixture(scope="session", params=DB_PARAMS)
def database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, worker_id: str
) -> Iterator[Database]:
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("db") / "sandbox.db"
        db = Database(f"sqlite:///{path}")
        db.migrate()
        yield db
        db.dispose()
    else:
        yield from _pg_schema_db(worker_id)


def _settings(state_dir: Path, database: Database) -> Settings:
    return Settings(
        database_url=database.url,
        state_dir=state_dir,
        environment="sandbox",
        rate_limit_per_minute=10_000,
        secret_key=SECRET_KEY,
        host="127.0.0.1",
        port=8080,
    )


@pytest.fixture(scope="session")
def base_settings(tmp_path_factory: pytest.TempPathFactory, database: Database) -> Settings:
    return _settings(tmp_path_factory.mktemp("state") / ".stealth", database)


@dataclass
class Sandbox:
    """One app under test, its state, and helpers to make partners and call the API as them."""

    state: AppState
    client: TestClient
    partners: list[Credentials] = field(default_factory=list)

    def partner(self, tier: str = "referral", **kwargs: Any) -> Credentials:
        environment = kwargs.pop("environment", self.state.settings.environment)
        creds = create_partner(
            self.state.db,
            self.state.box,
            tier=tier,
            environment=environment,
            name=kwargs.pop("name", f"Test {tier} {uuid.uuid4().hex[:6]}"),
            **kwargs,
        )
        self.partners.append(creds)
        return creds

    @staticmethod
    def headers(creds: Credentials, **extra: str) -> dict[str, str]:
        return {"X-Partner-ID": creds.partner_id, "X-Api-Key": creds.api_key, **extra}

    def call(self, method: str, url: str, creds: Credentials | None = None, **kwargs: Any) -> Any:
        headers = dict(kwargs.pop("headers", {}) or {})
        if creds is not None:
            headers = {**self.headers(creds), **headers}
        return self.client.request(method, url, headers=headers, **kwargs)

    def create_referral(self, creds: Credentials, **body: Any) -> dict[str, Any]:
        payload = {
            "partner_reference": f"cust_{uuid.uuid4().hex[:10]}",
            "product_category": "trt-cream",
            **body,
        }
        response = self.call("POST", "/partner/referrals", creds, json=payload)
        assert response.status_code == 201, response.text
        return response.json()


def make_sandbox(
    settings: Settings, database: Database, spec_document: dict[str, Any], limiter: RateLimiter | None = None
) -> Iterator[Sandbox]:
    state = build_state(
        settings,
        db=database,
        limiter=limiter or MemoryRateLimiter(),
        spec_document=spec_document,
        migrate=False,
    )
    app = create_app(settings, state=state)
    with TestClient(app, base_url="http://testserver", client=(CLIENT_IP, 50000)) as client:
        yield Sandbox(state=state, client=client)


@pytest.fixture(scope="session")
def _shared_sandbox(
    base_settings: Settings, database: Database, spec_document: dict[str, Any]
) -> Iterator[Sandbox]:
    yield from make_sandbox(base_settings, database, spec_document)


@pytest.fixture
def sandbox(_shared_sandbox: Sandbox) -> Iterator[Sandbox]:
    """The shared sandbox app (one per database), with a fresh rate limiter for each test."""
    _shared_sandbox.state.limiter = MemoryRateLimiter()
    _shared_sandbox.state.limits.invalidate()
    _shared_sandbox.partners = []
    yield _shared_sandbox


@pytest.fixture
def sandbox_factory(
    base_settings: Settings, database: Database, spec_document: dict[str, Any]
) -> Iterator[Any]:
    """Build extra apps on the same database with changed settings (production, low limits, Redis)."""
    stack: list[Iterator[Sandbox]] = []

    def factory(limiter: RateLimiter | None = None, **changes: Any) -> Sandbox:
        gen = make_sandbox(base_settings.with_(**changes), database, spec_document, limiter)
        stack.append(gen)
        return next(gen)

    yield factory
    for gen in reversed(stack):
        with contextlib.suppress(StopIteration):
            next(gen)


@pytest.fixture
def redis_url() -> str:
    if not REDIS_URL:
        pytest.skip("STEALTH_TEST_REDIS_URL is not set")
    return REDIS_URL


# ----------------------------------------------------------------------------- helpers


class SchemaCheck:
    """Validate payloads against the spec's own schemas (2020-12, formats asserted)."""

    def __init__(self, document: dict[str, Any]) -> None:
        from server.spec import SpecIndex

        self.index = SpecIndex(document)
        self._cache: dict[str, Any] = {}

    def errors(self, schema: dict[str, Any], instance: Any) -> list[str]:
        import jsonschema_rs

        validator = jsonschema_rs.Draft202012Validator(schema, validate_formats=True)
        return [
            f"{'/'.join(map(str, e.instance_path))}: {e.message}" for e in validator.iter_errors(instance)
        ]

    def component(self, name: str, instance: Any) -> None:
        errs = self.errors(self.index.resolved_schema(name), instance)
        assert not errs, f"{name}: {errs}"

    def webhook(self, event_type: str, payload: Any) -> None:
        schema = self.index.webhook_body_schema(event_type)
        assert schema is not None, f"no webhook {event_type} in the spec"
        errs = self.errors(schema, payload)
        assert not errs, f"{event_type}: {errs}"


@pytest.fixture(scope="session")
def schemas(spec_document: dict[str, Any]) -> SchemaCheck:
    return SchemaCheck(spec_document)


def advance(sandbox: Sandbox, creds: Credentials, referral_id: str, *statuses: str, **values: Any) -> None:
    """Walk a referral through statuses with the server's own transition code (what part 2 automates)."""
    from datetime import date, timedelta

    from server import clock
    from server.repositories import referrals as referrals_repo
    from server.services.transitions import transition_payment, transition_referral

    lifecycles = sandbox.state.lifecycles
    with sandbox.state.db.session() as session:
        referral = referrals_repo.get(session, creds.partner_id, referral_id)
        assert referral is not None
        for status in statuses:
            now = clock.real_now()
            if status.startswith("payment:"):
                target = status.split(":", 1)[1]
                extra: dict[str, Any] = {}
                if target == "due":
                    extra = {"amount_cents": 14900}
                elif target == "paid":
                    extra = {"paid_at": now}
                transition_payment(
                    session, lifecycles, referral, target, now, partner_tier=creds.tier, values=extra
                )
                continue
            if status == "shipped":
                f = referral.fulfillment
                assert f is not None
                f.carrier = values.get("carrier", "USPS")
                f.estimated_delivery = date.today() + timedelta(days=3)
            if status == "delivery_exception":
                assert referral.fulfillment is not None
                referral.fulfillment.exception_type = "failed_attempt"
            extra_values = (
                {"denial_category": values.get("denial_category", "not_a_candidate")}
                if status == "denied"
                else None
            )
            transition_referral(
                session, lifecycles, referral, status, now, partner_tier=creds.tier, values=extra_values
            )


def events_of(sandbox: Sandbox, referral_id: str) -> list[Any]:
    from sqlalchemy import select

    from server.db.models import Event

    with sandbox.state.db.session() as session:
        rows = session.scalars(
            select(Event).where(Event.referral_id == referral_id).order_by(Event.seq)
        ).all()
        session.expunge_all()
        return list(rows)


def set_partner(sandbox: Sandbox, creds: Credentials, **values: Any) -> None:
    from server.db.models import Partner

    with sandbox.state.db.session() as session:
        partner = session.get(Partner, creds.partner_id)
        assert partner is not None
        for key, value in values.items():
            setattr(partner, key, value)
    sandbox.state.limits.invalidate()
