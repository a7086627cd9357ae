"""The summary's aggregates (status_counts, revenue) against the same figures computed in Python from the
rows, for windows that cut through the data, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from server.db.models import Payment, ReferralStatusHistory
from server.repositories import referrals as referrals_repo
from tests.server.conftest import advance

T0 = datetime(2030, 5, 10, 12, 0, tzinfo=UTC)
WINDOWS = [
    (None, T0 + timedelta(days=400)),
    (T0 - timedelta(days=1), T0 + timedelta(days=1)),
    (T0 + timedelta(hours=1), T0 + timedelta(days=3)),
    (T0 + timedelta(days=2), T0 + timedelta(days=2, seconds=1)),
]


def _in(at: datetime | None, start: datetime | None, end: datetime) -> bool:
    return at is not None and at < end and (start is None or at >= start)


def test_revenue_nets_refunds_per_currency_in_the_window(sandbox):
    creds = sandbox.partner()
    ids = [sandbox.create_referral(creds)["referral_id"] for _ in range(5)]
    rows = [  # (currency, cents, paid_at, refunded_at)
        ("USD", 14900, T0, None),
        ("USD", 9900, T0 + timedelta(days=2), T0 + timedelta(days=2, hours=3)),
        ("EUR", 5000, T0 - timedelta(days=3), T0 + timedelta(hours=2)),
        ("EUR", None, T0, None),
        ("USD", 100, None, None),
    ]
    with sandbox.state.db.session() as session:
        for rid, (currency, cents, paid, refunded) in zip(ids, rows, strict=True):
            payment = session.scalar(select(Payment).where(Payment.referral_id == rid))
            payment.currency, payment.amount_cents = currency, cents
            payment.paid_at, payment.refunded_at = paid, refunded
    for start, end in WINDOWS:
        expected: dict[str, int] = {}
        for currency, cents, paid, refunded in rows:
            if _in(paid, start, end):
                expected[currency] = expected.get(currency, 0) + (cents or 0)
            if _in(refunded, start, end):
                expected[currency] = expected.get(currency, 0) - (cents or 0)
        with sandbox.state.db.reading() as session:
            got = referrals_repo.revenue(session, creds.partner_id, start, end)
        assert got == sorted(expected.items()), (start, end)


def test_status_counts_count_referrals_not_entries(sandbox):
    creds = sandbox.partner()
    a = sandbox.create_referral(creds, product_category="trt-cream")["referral_id"]
    b = sandbox.create_referral(creds, product_category="peptides")["referral_id"]
    advance(sandbox, creds, a, "enrolled", "payment:due", "payment:paid", "pending_review", "approved")
    advance(sandbox, creds, a, "awaiting_shipment", "shipped", "in_transit", "delivery_exception")
    advance(sandbox, creds, a, "in_transit", "delivery_exception", "in_transit")  # entered three times
    advance(sandbox, creds, b, "enrolled", "pending_review", "denied")
    h = ReferralStatusHistory
    with sandbox.state.db.session() as session:
        entries = session.execute(
            select(h.referral_id, h.status, h.product_category, h.at).where(h.partner_id == creds.partner_id)
        ).all()
    assert sum(1 for e in entries if e.status == "in_transit") == 3
    times = sorted({e.at for e in entries})
    windows = [(None, times[-1] + timedelta(seconds=1)), (times[2], times[-2]), (times[0], times[1])]
    for start, end in windows:
        expected: dict[tuple[str, str], set[str]] = {}
        for e in entries:
            if _in(e.at, start, end):
                expected.setdefault((e.status, e.product_category), set()).add(e.referral_id)
        with sandbox.state.db.reading() as session:
            got = referrals_repo.status_counts(session, creds.partner_id, start, end)
        assert got == sorted((s, c, len(r)) for (s, c), r in expected.items()), (start, end)
