"""Referral queries: lookup, keyset pages, expiry candidates and summary aggregates."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import CompoundSelect, Integer, Select, bindparam, func, literal, select, union_all, update
from sqlalchemy.orm import Session, joinedload, selectinload

from server.db.models import Payment, Referral, ReferralStatusHistory

# A referral as the API shows it: the one-to-one fulfillment and payment joined in the same query, the
# history in one more (two round trips instead of four; the ORM's per-query cost dominated the reads).
_FULL = (joinedload(Referral.fulfillment), joinedload(Referral.payment), selectinload(Referral.history))


def get(session: Session, partner_id: str, referral_id: str, *, full: bool = True) -> Referral | None:
    stmt = select(Referral).where(Referral.id == referral_id, Referral.partner_id == partner_id)
    if full:
        stmt = stmt.options(*_FULL)
    return session.scalar(stmt)


def get_any(session: Session, referral_id: str) -> Referral | None:
    """By id alone: only for the sandbox's own pages (enrollment, tracking), never for the API."""
    return session.scalar(
        select(Referral)
        .where(Referral.id == referral_id)
        .options(
            selectinload(Referral.history), selectinload(Referral.fulfillment), selectinload(Referral.payment)
        )
    )


def by_reference(session: Session, partner_id: str, partner_reference: str) -> Referral | None:
    return session.scalar(
        select(Referral).where(
            Referral.partner_id == partner_id, Referral.partner_reference == partner_reference
        )
    )


@dataclass(frozen=True)
class ListFilters:
    status: str | None = None
    fulfillment_status: str | None = None
    partner_reference: str | None = None
    product_category: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in self.__dict__.items()}


def _due(ids: Any) -> Select[Any]:
    """Referrals of :partner_id still `created` whose expires_at has passed at :due_at (bound parameters): an
    index range on ix_referrals_partner_status_expires, whatever the number of referrals."""
    r = Referral.__table__.alias("due").c
    return (
        select(ids(r))
        .where(
            r.partner_id == bindparam("partner_id", type_=r.partner_id.type),
            r.status == bindparam("due_status", "created", type_=r.status.type, literal_execute=True),
            r.expires_at <= bindparam("due_at", type_=r.expires_at.type),
        )
        .order_by(r.expires_at)
    )


# Built once: they run before every list page and summary.
_DUE = _due(lambda r: r.id).limit(bindparam("due_limit", type_=Integer(), literal_execute=True))
# For another statement to carry: 1 if some referral is due, else NULL (a list page asks in its own query).
DUE_FLAG = (
    _due(lambda r: literal(1, literal_execute=True))
    .limit(bindparam("one", 1, type_=Integer(), literal_execute=True))
    .scalar_subquery()
    .label("expiry_due")
)


def due_for_expiry(session: Session, partner_id: str, now: datetime, limit: int = 200) -> Sequence[str]:
    """Referrals still `created` whose expires_at has passed at ``now``, soonest first."""
    params = {"partner_id": partner_id, "due_at": now, "due_limit": limit}
    return session.connection().execute(_DUE, params).scalars().all()


def compare_and_set_status(
    session: Session, referral_id: str, from_status: str, values: dict[str, Any]
) -> bool:
    """Change the row only if its status is still ``from_status`` (no lost or doubled transitions)."""
    result = session.execute(
        update(Referral)
        .where(Referral.id == referral_id, Referral.status == from_status)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


def compare_and_set_payment(
    session: Session, referral_id: str, from_status: str, values: dict[str, Any]
) -> bool:
    result = session.execute(
        update(Payment)
        .where(Payment.referral_id == referral_id, Payment.status == from_status)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


@lru_cache(maxsize=4)
def _status_counts_statement(bounded: bool, bytewise: bool) -> Select[Any]:
    h = ReferralStatusHistory.__table__.c
    conds = [
        h.partner_id == bindparam("partner_id", type_=h.partner_id.type),
        h.at < bindparam("end", type_=h.at.type),
    ]
    if bounded:
        conds.append(h.at >= bindparam("start", type_=h.at.type))
    rid = h.referral_id.collate("C") if bytewise else h.referral_id
    return (
        select(h.status, h.product_category, func.count(func.distinct(rid)))
        .where(*conds)
        .group_by(h.status, h.product_category)
        .order_by(h.status, h.product_category)  # what the grouping's sort gave: by_category's key order
    )


def status_counts(
    session: Session, partner_id: str, start: datetime | None, end: datetime
) -> list[tuple[str, str, int]]:
    """(status, category, number of referrals that entered the status in [start, end)), by status and category.

    The history row carries its referral's category: no join, one range of ix_history_partner_at_cover (on
    PostgreSQL it covers the columns read). The distinct referral ids are compared bytewise on PostgreSQL
    (COLLATE "C": the same equality, a third of the sorting cost of a linguistic collation).
    """
    params: dict[str, Any] = {"partner_id": partner_id, "end": end}
    if start is not None:
        params["start"] = start
    stmt = _status_counts_statement(start is not None, session.get_bind().dialect.name == "postgresql")
    return [(s, c, int(n)) for s, c, n in session.connection().execute(stmt, params)]


@lru_cache(maxsize=2)
def _revenue_statement(bounded: bool) -> CompoundSelect[Any]:
    """(currency, +1 or -1, cents): payments received in [:start, :end) and refunds made in it, one statement."""
    p = Payment.__table__.c

    def sums(col: Any, sign: int) -> Select[Any]:
        conds = [
            p.partner_id == bindparam("partner_id", type_=p.partner_id.type),
            col.is_not(None),
            col < bindparam("end", type_=col.type),
        ]
        if bounded:
            conds.append(col >= bindparam("start", type_=col.type))
        total = func.coalesce(func.sum(p.amount_cents), 0)
        return select(p.currency, literal(sign, Integer()), total).where(*conds).group_by(p.currency)

    return union_all(sums(p.paid_at, 1), sums(p.refunded_at, -1))


def revenue(
    session: Session, partner_id: str, start: datetime | None, end: datetime
) -> list[tuple[str, int]]:
    """Payments received in the window minus refunds made in it, per currency."""
    params: dict[str, Any] = {"partner_id": partner_id, "end": end}
    if start is not None:
        params["start"] = start
    out: dict[str, int] = {}
    for cur, sign, total in session.connection().execute(_revenue_statement(start is not None), params):
        out[cur] = out.get(cur, 0) + sign * int(total)
    return sorted(out.items())
