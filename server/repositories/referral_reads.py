"""Hot read paths of the referral API in SQLAlchemy Core: GET /partner/referrals/{id} and list pages.

The ORM built three mapped objects per referral plus one per history entry, and that object building
was most of a read's CPU (see bench/README.md). These reads fetch the same columns with Core into
small frozen views carrying exactly the attributes the serializers read, so responses are unchanged:
one query for the referral(s) with fulfillment and payment outer-joined, one for the history.
Writes and everything that changes a referral keep using the ORM (repositories.referrals).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Select, select, tuple_
from sqlalchemy.orm import Session

from server.db.models import Fulfillment, Payment, Referral, ReferralStatusHistory
from server.repositories.referrals import ListFilters


@dataclass(frozen=True, slots=True)
class HistoryView:
    status: str
    at: datetime


@dataclass(frozen=True, slots=True)
class FulfillmentView:
    status: str | None
    carrier: str | None
    estimated_delivery: date | None
    updated_at: datetime | None
    shipped_at: datetime | None
    delivered_at: datetime | None
    exception_type: str | None


@dataclass(frozen=True, slots=True)
class PaymentView:
    status: str
    amount_cents: int | None
    currency: str
    paid_at: datetime | None
    refunded_at: datetime | None


@dataclass(frozen=True, slots=True)
class ReferralView:
    id: str
    partner_id: str
    partner_reference: str
    product_category: str
    status: str
    metadata_: dict[str, Any]
    created_at: datetime
    expires_at: datetime
    denial_category: str | None
    cancelled_by: str | None
    patient_id: str | None
    appointment_id: str | None
    fulfillment: FulfillmentView | None
    payment: PaymentView | None
    history: tuple[HistoryView, ...]


_R = (
    Referral.id,
    Referral.partner_id,
    Referral.partner_reference,
    Referral.product_category,
    Referral.status,
    Referral.metadata_,
    Referral.created_at,
    Referral.expires_at,
    Referral.denial_category,
    Referral.cancelled_by,
    Referral.patient_id,
    Referral.appointment_id,
)
_F = (
    Fulfillment.referral_id,
    Fulfillment.status,
    Fulfillment.carrier,
    Fulfillment.estimated_delivery,
    Fulfillment.updated_at,
    Fulfillment.shipped_at,
    Fulfillment.delivered_at,
    Fulfillment.exception_type,
)
_P = (
    Payment.referral_id,
    Payment.status,
    Payment.amount_cents,
    Payment.currency,
    Payment.paid_at,
    Payment.refunded_at,
)
_NR, _NF = len(_R), len(_F)


def _base() -> Select[Any]:
    return (
        select(*_R, *_F, *_P)
        .select_from(Referral)
        .outerjoin(Fulfillment, Fulfillment.referral_id == Referral.id)
        .outerjoin(Payment, Payment.referral_id == Referral.id)
    )


def _histories(session: Session, ids: Sequence[str]) -> dict[str, list[HistoryView]]:
    out: dict[str, list[HistoryView]] = {i: [] for i in ids}
    if not ids:
        return out
    h = ReferralStatusHistory
    rows = session.execute(
        select(h.referral_id, h.status, h.at).where(h.referral_id.in_(ids)).order_by(h.referral_id, h.id)
    )
    for rid, status, at in rows:
        out[rid].append(HistoryView(status, at))
    return out


def _views(session: Session, rows: Sequence[Any]) -> list[ReferralView]:
    history = _histories(session, [row[0] for row in rows])
    views = []
    for row in rows:
        f = row[_NR : _NR + _NF]
        p = row[_NR + _NF :]
        views.append(
            ReferralView(
                *row[:_NR],
                fulfillment=FulfillmentView(*f[1:]) if f[0] is not None else None,
                payment=PaymentView(*p[1:]) if p[0] is not None else None,
                history=tuple(history[row[0]]),
            )
        )
    return views


def read(session: Session, partner_id: str, referral_id: str) -> ReferralView | None:
    rows = session.execute(_base().where(Referral.id == referral_id, Referral.partner_id == partner_id)).all()
    views = _views(session, rows)
    return views[0] if views else None


def page(
    session: Session,
    partner_id: str,
    filters: ListFilters,
    limit: int,
    after: tuple[datetime, str] | None,
) -> list[ReferralView]:
    """Newest first; ``limit + 1`` rows so the caller knows whether more follow (keyset on created_at, id)."""
    conds = [Referral.partner_id == partner_id]
    if filters.status:
        conds.append(Referral.status == filters.status)
    if filters.fulfillment_status:
        conds.append(Referral.fulfillment_status == filters.fulfillment_status)
    if filters.partner_reference:
        conds.append(Referral.partner_reference == filters.partner_reference)
    if filters.product_category:
        conds.append(Referral.product_category == filters.product_category)
    if filters.created_after:
        conds.append(Referral.created_at > filters.created_after)
    if filters.created_before:
        conds.append(Referral.created_at < filters.created_before)
    if after is not None:
        # A row-value comparison, not `created_at < t OR (created_at = t AND id < rid)`: PostgreSQL turns
        # it into an index range on (partner_id, created_at, id), so a deep page costs what the first does.
        conds.append(tuple_(Referral.created_at, Referral.id) < tuple_(*after))
    stmt = _base().where(*conds).order_by(Referral.created_at.desc(), Referral.id.desc()).limit(limit + 1)
    return _views(session, session.execute(stmt).all())
