"""server.repositories.referral_reads: prebuilt Core reads give what the ORM path gives, byte for byte."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import select, update

from server import clock, serializers
from server.auth import AuthenticatedPartner
from server.cursor import newest_first_page
from server.db.models import Referral
from server.repositories import referral_reads
from server.repositories import referrals as referrals_repo
from server.repositories.referrals import ListFilters
from server.services.referrals import ReferralService
from tests.server.conftest import Sandbox


def _who(creds) -> AuthenticatedPartner:  # type: ignore[no-untyped-def]
    return AuthenticatedPartner(creds.partner_id, "slug", "name", "referral", "sandbox", 0.0, None)


def _dump(body: object) -> str:
    return json.dumps(body, separators=(",", ":"), sort_keys=True)


def test_read_matches_the_orm(sandbox: Sandbox) -> None:
    creds = sandbox.partner("referral")
    who = _who(creds)
    made = [sandbox.create_referral(creds, metadata={"n": str(i)}) for i in range(3)]
    sandbox.call("POST", f"/partner/referrals/{made[0]['referral_id']}/cancel", creds, json={})
    db, base = sandbox.state.db, sandbox.state.settings.base_url
    for ref in made:
        with db.connect() as conn:
            view = referral_reads.read(conn, creds.partner_id, ref["referral_id"])
        with db.session() as session:
            orm = referrals_repo.get(session, creds.partner_id, ref["referral_id"])
            assert view is not None and orm is not None
            assert _dump(serializers.referral(view, who, base)) == _dump(serializers.referral(orm, who, base))
    other = sandbox.partner("referral")
    with db.connect() as conn:
        assert referral_reads.read(conn, other.partner_id, made[1]["referral_id"]) is None
        assert referral_reads.read(conn, None, made[1]["referral_id"]) is not None  # cross_partner_read fault


def test_pages_match_the_orm_for_every_filter(sandbox: Sandbox) -> None:
    creds = sandbox.partner("referral")
    made = [sandbox.create_referral(creds) for _ in range(5)]
    sandbox.call("POST", f"/partner/referrals/{made[1]['referral_id']}/cancel", creds, json={})
    db = sandbox.state.db
    with db.session() as session:
        rows = list(session.scalars(select(Referral).where(Referral.partner_id == creds.partner_id)))
        middle = sorted(rows, key=lambda r: (r.created_at, r.id))[2]
        position = (middle.created_at, middle.id)
    cases = [
        ListFilters(),
        ListFilters(status="cancelled"),
        ListFilters(status="created", product_category="trt-cream"),
        ListFilters(partner_reference=made[3]["partner_reference"]),
        ListFilters(fulfillment_status="pending"),
        ListFilters(created_after=position[0] - timedelta(microseconds=1)),
        ListFilters(created_before=position[0] + timedelta(microseconds=1)),
    ]
    for filters in cases:
        for after in (None, position):
            for limit in (1, 2, 10):
                with db.connect() as conn:
                    got = [v.id for v in referral_reads.page(conn, creds.partner_id, filters, limit, after)]
                conds = [Referral.partner_id == creds.partner_id]
                for name, value in filters.__dict__.items():
                    if value is None:
                        continue
                    if name == "created_after":
                        conds.append(Referral.created_at > value)
                    elif name == "created_before":
                        conds.append(Referral.created_at < value)
                    else:
                        conds.append(getattr(Referral, name) == value)
                with db.session() as session:
                    want, more = newest_first_page(session, Referral, conds, limit, after)
                assert got[:limit] == [r.id for r in want], (filters, after, limit)
                assert (len(got) > limit) == more


def test_list_expires_what_is_due_then_reads(sandbox: Sandbox) -> None:
    creds = sandbox.partner("referral")
    made = [sandbox.create_referral(creds) for _ in range(2)]
    db = sandbox.state.db
    service = ReferralService(sandbox.state)
    who = _who(creds)
    with db.connect() as conn:
        assert referral_reads.due_for_expiry(conn, creds.partner_id, clock.partner_now(0.0)) == []
    with db.session() as session:
        session.execute(
            update(Referral)
            .where(Referral.id == made[0]["referral_id"])
            .values(expires_at=clock.partner_now(0.0) - timedelta(seconds=1))
        )
    rows, _ = service.list(who, ListFilters(), 10, None)
    status = {r.id: r.status for r in rows}
    assert status == {made[0]["referral_id"]: "expired", made[1]["referral_id"]: "created"}
    assert [h.status for r in rows if r.id == made[0]["referral_id"] for h in r.history] == [
        "created",
        "expired",
    ]
    with db.connect() as conn:
        assert referral_reads.due_for_expiry(conn, creds.partner_id, clock.partner_now(0.0)) == []


def test_statements_are_built_once() -> None:
    a = referral_reads._page_statement(("status",), True)
    assert a is referral_reads._page_statement(("status",), True)
    assert a._generate_cache_key() is a._generate_cache_key()


def test_create_checks_read_with_core(sandbox: Sandbox) -> None:
    from server.repositories import partners as partners_repo

    creds = sandbox.partner("referral")
    made = sandbox.create_referral(creds)
    db = sandbox.state.db
    with db.connect() as conn:
        assert referral_reads.reference_taken(conn, creds.partner_id, made["partner_reference"])
        assert not referral_reads.reference_taken(conn, creds.partner_id, "cust_unknown")
        assert not referral_reads.reference_taken(conn, "ptr_other", made["partner_reference"])
        assert partners_repo.product_currency(conn, creds.partner_id, "trt-cream") == "USD"
        assert partners_repo.product_currency(conn, creds.partner_id, "no-such-category") is None
    with db.session() as session:
        product = partners_repo.product(session, creds.partner_id, "trt-cream")
        assert product is not None
        product.active = False
    with db.connect() as conn:
        assert partners_repo.product_currency(conn, creds.partner_id, "trt-cream") is None
