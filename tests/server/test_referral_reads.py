"""The Core reads (repositories.referral_reads) serialize byte for byte as the ORM rows they replaced,
on every backend (PostgreSQL folds the history into the page's statement; SQLite reads it separately)."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from server import serializers
from server.auth import AuthenticatedPartner
from server.clock import real_now as created_now
from server.db.models import Referral, ReferralStatusHistory
from server.repositories import referral_reads
from server.repositories import referrals as referrals_repo
from server.repositories.referrals import ListFilters
from tests.server.conftest import advance


def _who(creds: Any) -> AuthenticatedPartner:
    return AuthenticatedPartner(
        creds.partner_id, creds.partner_id.removeprefix("ptr_"), "Test", creds.tier, "sandbox", 0.0, None
    )


def _dump(sandbox: Any, who: AuthenticatedPartner, r: Any) -> bytes:
    return json.dumps(serializers.referral(r, who, sandbox.state.settings.base_url)).encode()


def _varied_referrals(sandbox: Any, creds: Any) -> list[str]:
    ids = [
        sandbox.create_referral(creds, product_category=c, metadata={"n": str(i)})["referral_id"]
        for i, c in enumerate(["trt-cream", "peptides"] * 3)
    ]
    advance(sandbox, creds, ids[0], "enrolled", "payment:due", "payment:paid", "pending_review", "approved")
    advance(sandbox, creds, ids[1], "enrolled", "pending_review", "denied")
    advance(sandbox, creds, ids[2], "cancelled")
    advance(sandbox, creds, ids[3], "enrolled", "payment:due", "payment:paid", "pending_review", "approved")
    advance(sandbox, creds, ids[3], "awaiting_shipment", "shipped", "in_transit", "delivery_exception")
    advance(sandbox, creds, ids[3], "in_transit", "delivered")
    return ids


def test_core_views_serialize_as_the_orm_rows(sandbox):
    creds = sandbox.partner()
    who = _who(creds)
    ids = _varied_referrals(sandbox, creds)
    with sandbox.state.db.session() as session:
        orm = {rid: _dump(sandbox, who, referrals_repo.get(session, creds.partner_id, rid)) for rid in ids}
        one = {rid: _dump(sandbox, who, referral_reads.read(session, creds.partner_id, rid)) for rid in ids}
        pages: list[referral_reads.ReferralView] = []
        after = None
        while True:
            rows = referral_reads.page(session, creds.partner_id, ListFilters(), 2, after).views
            pages += rows[:2]
            if len(rows) <= 2:
                break
            after = (rows[1].created_at, rows[1].id)
        assert referral_reads.read(session, creds.partner_id, "ref_missing") is None
    assert one == orm
    assert sorted(v.id for v in pages) == sorted(ids) and len(pages) == len(ids)
    assert {v.id: _dump(sandbox, who, v) for v in pages} == orm
    assert (
        len(json.loads(orm[ids[3]])["status_history"]) == 10
    )  # re-entered in_transit: every entry, in order


def test_every_history_row_carries_its_referrals_category(sandbox):
    creds = sandbox.partner()
    _varied_referrals(sandbox, creds)
    h = ReferralStatusHistory
    with sandbox.state.db.session() as session:
        rows = session.execute(
            select(h.product_category, Referral.product_category)
            .join(Referral, Referral.id == h.referral_id)
            .where(h.partner_id == creds.partner_id)
        ).all()
    assert len(rows) > 6 and all(a == b for a, b in rows)


def test_a_page_says_whether_the_partner_has_referrals_due_for_expiry(sandbox):
    creds = sandbox.partner()
    ids = [sandbox.create_referral(creds)["referral_id"] for _ in range(2)]
    with sandbox.state.db.session() as session:
        created_at = referral_reads.read(session, creds.partner_id, ids[0]).created_at

        def due(at, filters=None):
            return referral_reads.page(
                session, creds.partner_id, filters or ListFilters(), 1, None, due_at=at
            )

        later = created_at + timedelta(days=8)
        assert due(created_at).expiry_due is False and len(due(created_at).views) == 2
        assert due(later).expiry_due is True
        empty = due(later, ListFilters(status="approved"))
        assert empty.views == [] and empty.expiry_due is True  # no row to carry it: asked on its own
        assert due(created_at, ListFilters(status="approved")).expiry_due is False
        assert referral_reads.page(session, creds.partner_id, ListFilters(), 1, None).expiry_due is False


def test_the_page_limit_is_written_into_the_sql(sandbox):
    """A literal LIMIT lets PostgreSQL reuse one generic plan for a prepared page (a bound one re-plans)."""
    from sqlalchemy import event

    creds = sandbox.partner()
    sandbox.create_referral(creds)
    sent: list[str] = []

    def record(_conn, _cursor, statement, *_args):
        sent.append(statement)

    engine = sandbox.state.db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        with sandbox.state.db.reading() as session:
            referral_reads.page(session, creds.partner_id, ListFilters(), 7, None, due_at=created_now())
    finally:
        event.remove(engine, "before_cursor_execute", record)
    [page_sql] = [s for s in sent if "ORDER BY referrals.created_at DESC" in s]
    assert re.search(r"LIMIT 8\b", page_sql) and re.search(r"LIMIT 1\b", page_sql), page_sql
