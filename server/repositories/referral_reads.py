"""Hot read paths of the referral API in SQLAlchemy Core: GET /partner/referrals/{id} and list pages.

The ORM built three mapped objects per referral plus one per history entry, and that object building
was most of a read's CPU (see bench/README.md). These reads fetch the same columns with Core into
small frozen views carrying exactly the attributes the serializers read, so responses are unchanged:
one query for a page of referrals with fulfillment and payment outer-joined and one for their history;
for one referral, one query with the history outer-joined too. Every statement is built once.
Writes and everything that changes a referral keep using the ORM (repositories.referrals).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Integer, Select, bindparam, select

from server.cursor import after_position
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


_r = Referral.__table__.c
_f = Fulfillment.__table__.c
_p = Payment.__table__.c
_h = ReferralStatusHistory.__table__.c
_R = (
    _r.id,
    _r.partner_id,
    _r.partner_reference,
    _r.product_category,
    _r.status,
    _r["metadata"],
    _r.created_at,
    _r.expires_at,
    _r.denial_category,
    _r.cancelled_by,
    _r.patient_id,
    _r.appointment_id,
)
_F = (
    _f.referral_id,
    _f.status,
    _f.carrier,
    _f.estimated_delivery,
    _f.updated_at,
    _f.shipped_at,
    _f.delivered_at,
    _f.exception_type,
)
_P = (_p.referral_id, _p.status, _p.amount_cents, _p.currency, _p.paid_at, _p.refunded_at)
_NR, _NF = len(_R), len(_F)

# Built once: a prebuilt statement memoizes its cache key, so executing it again only binds values.
_BASE = select(*_R, *_F, *_P).select_from(
    Referral.__table__.outerjoin(Fulfillment.__table__, _f.referral_id == _r.id).outerjoin(
        Payment.__table__, _p.referral_id == _r.id
    )
)
# One referral with its history outer-joined (a row per history entry, in order): one round trip.
_ONE = (
    select(*_R, *_F, *_P, _h.id, _h.status, _h.at)
    .select_from(
        Referral.__table__.outerjoin(Fulfillment.__table__, _f.referral_id == _r.id)
        .outerjoin(Payment.__table__, _p.referral_id == _r.id)
        .outerjoin(ReferralStatusHistory.__table__, _h.referral_id == _r.id)
    )
    .order_by(_h.id)
)
_NV = _NR + _NF + len(_P)
_READ = _ONE.where(_r.id == bindparam("referral_id"), _r.partner_id == bindparam("partner_id"))
_READ_ANY = _ONE.where(_r.id == bindparam("referral_id"))
_HISTORY = (
    select(_h.referral_id, _h.status, _h.at)
    .where(_h.referral_id.in_(bindparam("ids", expanding=True)))
    .order_by(_h.referral_id, _h.id)
)
# List filters: (name, condition); a page's statement is built once per combination of filters used.
_FILTERS: tuple[tuple[str, ColumnElement[bool]], ...] = (
    ("status", _r.status == bindparam("status")),
    ("fulfillment_status", _r.fulfillment_status == bindparam("fulfillment_status")),
    ("partner_reference", _r.partner_reference == bindparam("partner_reference")),
    ("product_category", _r.product_category == bindparam("product_category")),
    ("created_after", _r.created_at > bindparam("created_after", type_=_r.created_at.type)),
    ("created_before", _r.created_at < bindparam("created_before", type_=_r.created_at.type)),
)
_DUE = (
    select(_r.id)
    .where(
        _r.partner_id == bindparam("partner_id"),
        _r.status == "created",
        _r.expires_at <= bindparam("now", type_=_r.expires_at.type),
    )
    .order_by(_r.expires_at)
    .limit(200)
)  # ix_referrals_partner_status_expires: an index range, empty when nothing is due
_BY_REFERENCE = select(_r.id).where(
    _r.partner_id == bindparam("partner_id"), _r.partner_reference == bindparam("partner_reference")
)
_AFTER = after_position(
    _r.created_at,
    _r.id,
    (bindparam("after_at", type_=_r.created_at.type), bindparam("after_id", type_=_r.id.type)),
)


@functools.cache
def _page_statement(used: tuple[str, ...], keyset: bool) -> Select[Any]:
    conds = [_r.partner_id == bindparam("partner_id")]
    conds += [cond for name, cond in _FILTERS if name in used]
    if keyset:
        conds.append(_AFTER)
    return (
        _BASE.where(*conds)
        .order_by(_r.created_at.desc(), _r.id.desc())
        .limit(bindparam("limit", type_=Integer))
    )


def _histories(conn: Connection, ids: Sequence[str]) -> dict[str, list[HistoryView]]:
    out: dict[str, list[HistoryView]] = {i: [] for i in ids}
    if not ids:
        return out
    for rid, status, at in conn.execute(_HISTORY, {"ids": list(ids)}):
        out[rid].append(HistoryView(status, at))
    return out


def _view(row: Any, history: tuple[HistoryView, ...]) -> ReferralView:
    f = row[_NR : _NR + _NF]
    p = row[_NR + _NF : _NV]
    return ReferralView(
        *row[:_NR],
        fulfillment=FulfillmentView(*f[1:]) if f[0] is not None else None,
        payment=PaymentView(*p[1:]) if p[0] is not None else None,
        history=history,
    )


def _views(conn: Connection, rows: Sequence[Any]) -> list[ReferralView]:
    history = _histories(conn, [row[0] for row in rows])
    return [_view(row, tuple(history[row[0]])) for row in rows]


def reference_taken(conn: Connection, partner_id: str, partner_reference: str) -> bool:
    """Whether the partner already has a referral with this partner_reference (the idempotency key)."""
    params = {"partner_id": partner_id, "partner_reference": partner_reference}
    return conn.execute(_BY_REFERENCE, params).first() is not None


def due_for_expiry(conn: Connection, partner_id: str, now: datetime) -> list[str]:
    """Up to 200 referrals of the partner still `created` with expires_at at or before ``now``."""
    return list(conn.scalars(_DUE, {"partner_id": partner_id, "now": now}))


def read(conn: Connection, partner_id: str | None, referral_id: str) -> ReferralView | None:
    """One referral of ``partner_id`` (None: of any partner — only the cross_partner_read test fault asks)."""
    if partner_id is None:
        rows = conn.execute(_READ_ANY, {"referral_id": referral_id}).all()
    else:
        rows = conn.execute(_READ, {"referral_id": referral_id, "partner_id": partner_id}).all()
    if not rows:
        return None
    return _view(
        rows[0], tuple(HistoryView(row[_NV + 1], row[_NV + 2]) for row in rows if row[_NV] is not None)
    )


def page(
    conn: Connection,
    partner_id: str,
    filters: ListFilters,
    limit: int,
    after: tuple[datetime, str] | None,
) -> list[ReferralView]:
    """Newest first; ``limit + 1`` rows so the caller knows whether more follow (keyset on created_at, id)."""
    params: dict[str, Any] = {"partner_id": partner_id, "limit": limit + 1}
    for name, _cond in _FILTERS:
        value = getattr(filters, name)
        if value:
            params[name] = value
    if after is not None:
        params["after_at"], params["after_id"] = after
    stmt = _page_statement(tuple(name for name, _c in _FILTERS if name in params), after is not None)
    return _views(conn, conn.execute(stmt, params).all())
