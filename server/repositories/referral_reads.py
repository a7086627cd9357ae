"""Hot read paths of the referral API in SQLAlchemy Core: GET /partner/referrals/{id} and list pages.

The ORM built three mapped objects per referral plus one per history entry, and that object building
was most of a read's CPU (see bench/README.md). These reads fetch the same columns with Core into
small frozen views carrying exactly the attributes the serializers read, so responses are unchanged:
one query for the referral(s) with fulfillment and payment outer-joined. On PostgreSQL the history comes
in the same statement (a LATERAL subquery aggregating each referral's entries into two arrays: one round
trip per page); elsewhere in a second query. Writes and everything that changes a referral keep using the
ORM (repositories.referrals).

The statements are built once per shape (which filters, whether a cursor, the backend) with bound
parameters and reused: building them, not running them, was a good part of a page's cost.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import ColumnElement, Integer, Select, bindparam, func, select, true
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.orm import Session

from server.cursor import after_position
from server.db.models import Fulfillment, Payment, Referral, ReferralStatusHistory
from server.repositories.referrals import DUE_FLAG, ListFilters, due_for_expiry


# Read-only by convention, not frozen: a frozen dataclass's __init__ sets each field through
# object.__setattr__ (five times the cost here), and a page builds some two hundred of these.
@dataclass(slots=True)
class HistoryView:
    status: str
    at: datetime


@dataclass(slots=True)
class FulfillmentView:
    status: str | None
    carrier: str | None
    estimated_delivery: date | None
    updated_at: datetime | None
    shipped_at: datetime | None
    delivered_at: datetime | None
    exception_type: str | None


@dataclass(slots=True)
class PaymentView:
    status: str
    amount_cents: int | None
    currency: str
    paid_at: datetime | None
    refunded_at: datetime | None


@dataclass(slots=True)
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
_hs = ReferralStatusHistory.__table__.c
_h = ReferralStatusHistory.__table__.alias("h").c
_R = (
    _r.id,
    _r.partner_id,
    _r.partner_reference,
    _r.product_category,
    _r.status,
    _r.metadata,
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
_NR, _NF, _NP = len(_R), len(_F), len(_P)

# ListFilters field -> its condition on a bound parameter of the same name (in this order)
_FILTERS: dict[str, ColumnElement[bool]] = {
    "status": _r.status == bindparam("status", type_=_r.status.type),
    "fulfillment_status": _r.fulfillment_status
    == bindparam("fulfillment_status", type_=_r.fulfillment_status.type),
    "partner_reference": _r.partner_reference
    == bindparam("partner_reference", type_=_r.partner_reference.type),
    "product_category": _r.product_category == bindparam("product_category", type_=_r.product_category.type),
    "created_after": _r.created_at > bindparam("created_after", type_=_r.created_at.type),
    "created_before": _r.created_at < bindparam("created_before", type_=_r.created_at.type),
}


def _select(with_history: bool) -> Select[Any]:
    """The referral with fulfillment and payment outer-joined; with ``with_history`` (PostgreSQL), also its
    history as two arrays (statuses, times) in entry order, from a LATERAL subquery."""
    joined = Referral.__table__.outerjoin(Fulfillment.__table__, _f.referral_id == _r.id).outerjoin(
        Payment.__table__, _p.referral_id == _r.id
    )
    if not with_history:
        return select(*_R, *_F, *_P).select_from(joined)
    entries = (
        select(
            func.array_agg(aggregate_order_by(_h.status, _h.id)).label("statuses"),
            func.array_agg(aggregate_order_by(_h.at, _h.id)).label("ats"),
        )
        .where(_h.referral_id == _r.id)
        .lateral("entries")
    )
    return select(*_R, *_F, *_P, entries.c.statuses, entries.c.ats).select_from(
        joined.outerjoin(entries, true())
    )


@lru_cache(maxsize=8)
def _one_statement(with_history: bool, any_partner: bool) -> Select[Any]:
    conds = [_r.id == bindparam("referral_id", type_=_r.id.type)]
    if not any_partner:
        conds.append(_r.partner_id == bindparam("partner_id", type_=_r.partner_id.type))
    return _select(with_history).where(*conds)


@lru_cache(maxsize=512)
def _page_statement(with_history: bool, filters: tuple[str, ...], keyset: bool, due: bool) -> Select[Any]:
    conds = [_r.partner_id == bindparam("partner_id", type_=_r.partner_id.type)]
    conds += [_FILTERS[name] for name in filters]
    if keyset:
        position = (
            bindparam("after_created_at", type_=_r.created_at.type),
            bindparam("after_id", type_=_r.id.type),
        )
        conds.append(after_position(_r.created_at, _r.id, position))
    stmt = _select(with_history)
    if due:
        stmt = stmt.add_columns(DUE_FLAG)
    return (
        stmt.where(*conds)
        .order_by(_r.created_at.desc(), _r.id.desc())
        # written into the SQL: PostgreSQL then plans a prepared page once (a generic plan knows the limit)
        # instead of on every call; a bound LIMIT made it re-plan each time (pg_prepared_statements)
        .limit(bindparam("limit", type_=Integer(), literal_execute=True))
    )


_HISTORY = (
    select(_hs.referral_id, _hs.status, _hs.at)
    .where(_hs.referral_id.in_(bindparam("ids", expanding=True)))
    .order_by(_hs.referral_id, _hs.id)
)


def _histories(session: Session, ids: Sequence[str]) -> dict[str, list[HistoryView]]:
    out: dict[str, list[HistoryView]] = {i: [] for i in ids}
    if ids:
        for rid, status, at in session.connection().execute(_HISTORY, {"ids": list(ids)}):
            out[rid].append(HistoryView(status, at))
    return out


def _view(row: Any, history: tuple[HistoryView, ...]) -> ReferralView:
    f = row[_NR : _NR + _NF]
    p = row[_NR + _NF : _NR + _NF + _NP]
    return ReferralView(
        *row[:_NR],
        fulfillment=FulfillmentView(*f[1:]) if f[0] is not None else None,
        payment=PaymentView(*p[1:]) if p[0] is not None else None,
        history=history,
    )


def _folds_history(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _fetch(
    session: Session, stmt: Select[Any], params: dict[str, Any], with_history: bool
) -> tuple[list[ReferralView], list[Any]]:
    """The views of ``stmt``'s rows, each with its history (in the rows, or read here); and the rows."""
    rows = session.connection().execute(stmt, params).all()
    if with_history:
        h = _NR + _NF + _NP
        return [
            _view(row, tuple(map(HistoryView, row[h], row[h + 1])) if row[h] else ()) for row in rows
        ], rows
    history = _histories(session, [row[0] for row in rows])
    return [_view(row, tuple(history[row[0]])) for row in rows], rows


def read(session: Session, partner_id: str | None, referral_id: str) -> ReferralView | None:
    """One referral of ``partner_id`` (None: of any partner — only the cross_partner_read test fault asks)."""
    fold = _folds_history(session)
    params = {"referral_id": referral_id}
    if partner_id is not None:
        params["partner_id"] = partner_id
    views, _rows = _fetch(session, _one_statement(fold, partner_id is None), params, fold)
    return views[0] if views else None


@dataclass(frozen=True, slots=True)
class Page:
    views: list[ReferralView]
    expiry_due: bool  # asked with ``due_at``: some referral of the partner is still `created` past expires_at


def page(
    session: Session,
    partner_id: str,
    filters: ListFilters,
    limit: int,
    after: tuple[datetime, str] | None,
    *,
    due_at: datetime | None = None,
) -> Page:
    """Newest first; ``limit + 1`` rows so the caller knows whether more follow (keyset on created_at, id).

    With ``due_at``, the same statement also says whether the partner has referrals to expire at that time
    (the sweep on access costs no query of its own when there is none, the usual case).
    """
    params: dict[str, Any] = {"partner_id": partner_id, "limit": limit + 1}
    for name in _FILTERS:
        value = getattr(filters, name)
        if value:
            params[name] = value
    if after is not None:
        params["after_created_at"], params["after_id"] = after
    if due_at is not None:
        params["due_at"] = due_at
    fold = _folds_history(session)
    shape = tuple(name for name in _FILTERS if name in params)
    stmt = _page_statement(fold, shape, after is not None, due_at is not None)
    views, rows = _fetch(session, stmt, params, fold)
    if due_at is None:
        return Page(views, False)
    if rows:
        return Page(views, rows[0][-1] is not None)
    return Page(views, bool(due_for_expiry(session, partner_id, due_at, limit=1)))  # no row to carry it
