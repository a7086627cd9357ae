"""Every status change goes through here: checked against the spec's x-lifecycle, stored with its
history row and its outbox event in the caller's transaction, compare-and-set so that two concurrent
writers can never both apply (or double-emit) the same transition."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from server.clock import iso
from server.db.models import Event, Fulfillment, Payment, Referral, ReferralStatusHistory
from server.lifecycle import IllegalTransition, Lifecycles
from server.repositories import referrals as referrals_repo
from server.services.events import write_referral_event


class ConcurrentChange(Exception):
    """Someone else changed the object first; the caller re-reads and decides again."""


def referral_event_extra(
    referral: Referral, to_status: str, payment: Payment | None, fulfillment: Fulfillment | None
) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    if to_status == "denied":
        extra["denial_category"] = referral.denial_category or "not_a_candidate"
    elif to_status == "cancelled":
        extra["cancelled_by"] = referral.cancelled_by or "partner"
    elif to_status in ("shipped", "in_transit", "out_for_delivery", "delivered", "delivery_exception"):
        extra["carrier"] = (fulfillment.carrier if fulfillment else None) or "USPS"
        if to_status == "shipped":
            est = fulfillment.estimated_delivery if fulfillment else None
            extra["estimated_delivery"] = est.isoformat() if est else None
        elif to_status == "delivered":
            extra["delivered_at"] = iso(fulfillment.delivered_at if fulfillment else None)
        elif to_status == "delivery_exception":
            extra["exception_type"] = (fulfillment.exception_type if fulfillment else None) or "other"
    return extra


def transition_referral(
    session: Session,
    lifecycles: Lifecycles,
    referral: Referral,
    to_status: str,
    at: datetime,
    *,
    partner_tier: str,
    values: dict[str, Any] | None = None,
) -> Event | None:
    """Move ``referral`` to ``to_status`` (raises IllegalTransition / ConcurrentChange)."""
    from_status = referral.status
    transition = lifecycles.referral.transition(from_status, to_status)
    fulfillment = referral.fulfillment
    fl = lifecycles.fulfillment
    mirrors_fulfillment = to_status in fl.states
    if mirrors_fulfillment:
        current = fulfillment.status if fulfillment else None
        if current is None:
            if to_status not in fl.initials:
                raise IllegalTransition(fl.name, None, to_status)
        else:
            fl.transition(current, to_status)
    changes: dict[str, Any] = {"status": to_status, "updated_at": at, **(values or {})}
    if mirrors_fulfillment:
        changes["fulfillment_status"] = to_status
    if not referrals_repo.compare_and_set_status(session, referral.id, from_status, changes):
        raise ConcurrentChange(referral.id)
    for key, value in changes.items():
        set_committed(referral, key, value)
    if mirrors_fulfillment:
        if fulfillment is None:
            fulfillment = Fulfillment(referral_id=referral.id)
            session.add(fulfillment)
            referral.fulfillment = fulfillment
        fulfillment.status = to_status
        fulfillment.updated_at = at
        if to_status == "shipped" and fulfillment.shipped_at is None:
            fulfillment.shipped_at = at
        if to_status == "delivered" and fulfillment.delivered_at is None:
            fulfillment.delivered_at = at
    session.add(ReferralStatusHistory.entry(referral, to_status, at))
    from server.services.network_fulfillment import on_referral_status

    on_referral_status(session, referral, to_status, at)  # the pharmacy order moves with the fulfillment
    if transition.event is None:
        return None
    extra = referral_event_extra(referral, to_status, referral.payment, fulfillment)
    if partner_tier == "clinical":
        from server.services.clinical import expanded_referral_data

        extra.update(expanded_referral_data(session, referral, to_status, at))  # seed 002 §12.1
    event = write_referral_event(
        session, referral, transition.event, at, partner_tier=partner_tier, extra=extra
    )
    from server.services.clinical import on_referral_transition

    on_referral_transition(session, referral, to_status, at, partner_tier)  # clinical-tier events
    return event


def transition_payment(
    session: Session,
    lifecycles: Lifecycles,
    referral: Referral,
    to_status: str,
    at: datetime,
    *,
    partner_tier: str,
    values: dict[str, Any] | None = None,
) -> Event | None:
    payment = referral.payment
    if payment is None:
        raise IllegalTransition("payment", None, to_status)
    from_status = payment.status
    transition = lifecycles.payment.transition(from_status, to_status)
    changes = {"status": to_status, **(values or {})}
    if not referrals_repo.compare_and_set_payment(session, referral.id, from_status, changes):
        raise ConcurrentChange(referral.id)
    for key, value in changes.items():
        set_committed(payment, key, value)
    from server.services.clinical import on_payment_transition

    on_payment_transition(session, referral, to_status, at, partner_tier)  # clinical transaction refund
    if transition.event is None:
        return None
    extra = {"amount_cents": payment.amount_cents or 0, "currency": payment.currency}
    if partner_tier == "clinical":
        from server.services.clinical import expanded_referral_data

        extra.update(
            expanded_referral_data(session, referral, transition.event.removeprefix("referral."), at)
        )
    return write_referral_event(
        session, referral, transition.event, at, partner_tier=partner_tier, extra=extra
    )


def close_payment(
    session: Session, lifecycles: Lifecycles, referral: Referral, at: datetime, *, partner_tier: str
) -> None:
    """When a referral ends before fulfillment: nothing will be taken (or what was paid is refunded)."""
    payment = referral.payment
    if payment is None:
        return
    if lifecycles.payment.is_legal(payment.status, "not_applicable"):
        transition_payment(session, lifecycles, referral, "not_applicable", at, partner_tier=partner_tier)
    elif lifecycles.payment.is_legal(payment.status, "refunded"):
        transition_payment(
            session,
            lifecycles,
            referral,
            "refunded",
            at,
            partner_tier=partner_tier,
            values={"refunded_at": at},
        )


def set_committed(obj: Any, key: str, value: Any) -> None:
    """Reflect a value written by a core UPDATE on the loaded object without marking it dirty."""
    from sqlalchemy.orm.attributes import set_committed_value

    set_committed_value(obj, key, value)
