"""0007_history_category: existing history rows get their referral's category; the summary's index."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import inspect, select, text

from server.db.engine import Database
from server.db.models import Partner, Referral, ReferralStatusHistory
from tests.server.conftest import DB_PARAMS, scratch_schema

BEFORE = "0006_bench_indexes"


@pytest.fixture(params=DB_PARAMS)
def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        db = Database(f"sqlite:///{tmp_path / 'm.db'}")
        yield db
        db.dispose()
        return
    with scratch_schema("stealth_m7_", migrate=False) as (db, _schema):
        yield db


def _seed_at_0006(db: Database) -> dict[str, str]:
    """A partner, two referrals of different categories and their history, written as 0006 stored them."""
    now = datetime.now(UTC).replace(microsecond=0)
    categories = {"ref_m7a": "trt-cream", "ref_m7b": "peptides"}
    with db.engine.begin() as conn:
        conn.execute(
            Partner.__table__.insert().values(
                id="ptr_m7",
                slug="m7",
                name="M7",
                tier="referral",
                environment="sandbox",
                created_at=now,
                webhook_secret_encrypted=b"x",
            )
        )
        for rid, category in categories.items():
            conn.execute(
                Referral.__table__.insert().values(
                    id=rid,
                    partner_id="ptr_m7",
                    partner_reference=rid,
                    product_category=category,
                    status="enrolled",
                    metadata={},
                    request_fingerprint="0" * 64,
                    created_at=now,
                    updated_at=now,
                    expires_at=now + timedelta(days=7),
                )
            )
            for i, status in enumerate(("created", "enrolled")):
                conn.execute(
                    text(
                        "INSERT INTO referral_status_history (referral_id, partner_id, status, at) "
                        "VALUES (:r, 'ptr_m7', :s, :at)"
                    ),
                    {"r": rid, "s": status, "at": (now + timedelta(seconds=i)).replace(tzinfo=None)},
                )
    return categories


def _indexes(db: Database, table: str) -> set[str]:
    with db.engine.connect() as conn:
        return {str(ix["name"]) for ix in inspect(conn).get_indexes(table)}


def test_upgrade_from_0006_backfills_the_category_and_indexes_the_summary(empty_db: Database) -> None:
    cfg = empty_db.alembic_config()
    command.upgrade(cfg, BEFORE)
    categories = _seed_at_0006(empty_db)
    command.upgrade(cfg, "head")

    h = ReferralStatusHistory
    with empty_db.engine.connect() as conn:
        rows = conn.execute(select(h.referral_id, h.product_category)).all()
        columns = {c["name"]: c for c in inspect(conn).get_columns("referral_status_history")}
    assert len(rows) == 4
    assert all(category == categories[rid] for rid, category in rows)
    assert columns["product_category"]["nullable"] is False
    history_ix = _indexes(empty_db, "referral_status_history")
    assert "ix_history_partner_at_cover" in history_ix and "ix_history_partner_at" not in history_ix
    assert "ix_referrals_id_category" not in _indexes(empty_db, "referrals")
    if empty_db.backend == "postgresql":
        with empty_db.engine.connect() as conn:
            definition = conn.scalar(
                text(
                    "SELECT indexdef FROM pg_indexes "
                    "WHERE schemaname = current_schema() AND indexname = 'ix_history_partner_at_cover'"
                )
            )
        assert "INCLUDE (status, product_category, referral_id)" in str(definition)

    command.downgrade(cfg, BEFORE)
    with empty_db.engine.connect() as conn:
        columns = {c["name"] for c in inspect(conn).get_columns("referral_status_history")}
    assert "product_category" not in columns
    assert "ix_history_partner_at" in _indexes(empty_db, "referral_status_history")
    assert "ix_referrals_id_category" in _indexes(empty_db, "referrals")
    command.upgrade(cfg, "head")  # and up again over the same rows
