"""server.repositories.credentials: the per-request credential lookup (Core, one prebuilt statement)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from server import auth, clock
from server.db.models import Partner
from server.errors import ApiError
from server.repositories import credentials
from server.repositories import partners as partners_repo
from server.services.partners import rotate_key
from tests.server.conftest import Sandbox


def test_lookup_reads_what_the_orm_reads(sandbox: Sandbox) -> None:
    creds = sandbox.partner("referral", allowed_ips=["10.0.0.0/8"])
    db = sandbox.state.db
    with db.connect() as conn:
        record = credentials.lookup(conn, creds.partner_id)
    with db.session() as session:
        orm = partners_repo.get_with_key(session, creds.partner_id)
    assert record is not None and orm is not None
    partner, key = record
    for name in credentials.PartnerRecord.__slots__:
        assert getattr(partner, name) == getattr(orm[0], name), name
    for name in credentials.KeyRecord.__slots__:
        assert getattr(key, name) == getattr(orm[1], name), name
    now = clock.real_now()
    env = sandbox.state.settings.environment
    assert auth.check_credentials(creds.partner_id, creds.api_key, record, env, now) == (
        auth.check_credentials(creds.partner_id, creds.api_key, orm, env, now)
    )


def test_lookup_unknown_partner(sandbox: Sandbox) -> None:
    with sandbox.state.db.connect() as conn:
        assert credentials.lookup(conn, "ptr_does_not_exist") is None


def test_lookup_is_fresh_every_time(sandbox: Sandbox) -> None:
    """No caching across requests: a rotation, a clock offset or a deactivation shows at once."""
    creds = sandbox.partner("referral")
    db = sandbox.state.db
    env = sandbox.state.settings.environment
    new_key = rotate_key(db, creds.partner_id, overlap_seconds=0)["api_key"]
    with db.session() as session:
        session.execute(
            update(Partner).where(Partner.id == creds.partner_id).values(clock_offset_seconds=3600.0)
        )
    with db.connect() as conn:
        record = credentials.lookup(conn, creds.partner_id)
    assert record is not None and record[0].clock_offset_seconds == 3600.0
    later = datetime.now(UTC) + timedelta(seconds=1)
    assert (
        auth.check_credentials(creds.partner_id, new_key, record, env, later).clock_offset_seconds == 3600.0
    )
    with pytest.raises(ApiError):
        auth.check_credentials(creds.partner_id, creds.api_key, record, env, later)  # overlap 0: old key gone
    with db.session() as session:
        session.execute(update(Partner).where(Partner.id == creds.partner_id).values(active=False))
    with db.connect() as conn:
        record = credentials.lookup(conn, creds.partner_id)
    with pytest.raises(ApiError):
        auth.check_credentials(creds.partner_id, new_key, record, env, later)


def test_lookup_statement_is_built_once() -> None:
    """The statement is a module constant: its cache key is memoized, nothing is rebuilt per call."""
    assert credentials.LOOKUP._generate_cache_key() is credentials.LOOKUP._generate_cache_key()
