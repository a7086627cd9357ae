"""The simulated pharmacy: medication requests and orders, shipment groups and shipments.

Orders follow the x-lifecycle of MedicationUpdatedEventData (PH-009): validated → submitted → filled →
shipped → delivered, and validated | submitted | filled → cancelled. Each change emits
``medication:updated`` (``previous_status`` null on the first). When the first order of a shipment group
is filled the shipment is created (``pending``, shipment:created); when an order ships the shipment is
``shipped``. A pending shipment can be cancelled (shipment:cancelled; its filled orders are cancelled).

Entry points for the other tiers (prescriber route-pharmacy, clinical prescriptions, referral approvals):
``create_medication_order`` to route a prescription into the pharmacy, then ``advance_order`` /
``tick`` (the sandbox clock) to move it. Every function runs in its own transaction.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from server import clock
from server.db.engine import Database
from server.db.models_pharmacy import Clinic, MedicationOrder, MedicationRequest, ShipmentGroup
from server.pharmacy.events import emit

NEXT_STATUS = {"validated": "submitted", "submitted": "filled", "filled": "shipped", "shipped": "delivered"}
CANCELLABLE = frozenset({"validated", "submitted", "filled"})
TERMINAL = frozenset({"delivered", "cancelled"})
DEFAULT_STEP_SECONDS = 60.0
# medication requests whose orders are advanced by a partner-facing simulation on the partner's clock
PARTNER_DRIVEN_SOURCES = ("prescriber", "referral")
NOTES = {
    "validated": "Order validated",
    "submitted": "Submitted to the dispensing pharmacy",
    "filled": "Medication filled",
    "shipped": "Handed to the carrier",
    "delivered": "Delivered",
    "cancelled": "Order cancelled",
}


class PharmacyError(ValueError):
    """A simulation call that the current state does not allow (caller bug, not an API error)."""


@dataclass(frozen=True)
class OrderRef:
    medication_order_id: str
    medication_request_id: str
    prescription_id: str
    shipment_group_id: str
    status: str


def _now(now: datetime | None) -> datetime:
    return clock.to_millis(now) if now is not None else clock.real_now()


def _iso_ms(dt: datetime | None) -> str | None:
    if dt is None:
        return None
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def _lock(session: Session, model: Any, key: str) -> Any:
    backend = session.get_bind().dialect.name
    return session.get(model, key, with_for_update=backend == "postgresql")


def _tracking_number(shipping_partner: str = "FedEx") -> str:
    """A tracking number shaped like the carrier's (USPS: 22 digits starting 9400)."""
    if shipping_partner == "USPS":
        return "9400" + "".join(secrets.choice("0123456789") for _ in range(18))
    return "1Z" + secrets.token_hex(8).upper()


def medication_event(
    order: MedicationOrder, request: MedicationRequest, previous: str | None
) -> dict[str, Any]:
    return {
        "medication_order_id": order.id,
        "prescription_id": request.prescription_id,
        "medication_request_id": request.id,
        "status": order.status,
        "previous_status": previous,
        "updated_at": _iso_ms(order.updated_at),
        "pharmetika_status": order.status,
        "tracking_number": order.tracking_number,
        "notes": order.notes,
    }


def _group_order_ids(session: Session, group_id: str) -> list[str]:
    return list(
        session.scalars(
            select(MedicationOrder.id)
            .where(MedicationOrder.shipment_group_id == group_id, MedicationOrder.status != "cancelled")
            .order_by(MedicationOrder.created_at, MedicationOrder.seq)
        )
    )


def shipment_created_event(session: Session, group: ShipmentGroup) -> dict[str, Any]:
    tn = group.tracking_number
    return {
        "shipment_id": group.shipment_id,
        "medication_orders": _group_order_ids(session, group.id),
        "shipment_status": group.shipment_status,
        "shipped_at": _iso_ms(group.shipped_at),
        "tracking_number": tn,
        "tracking_url": f"https://tracking.example.com/{tn}" if tn else None,
        "shipping_partner": group.shipping_partner,
        "delivery_method": group.delivery_method,
        "delivery_location": dict(group.delivery_location),
        "notes": group.notes,
        "barcode_url": None,
        "shipping_label": None,
    }


def _change(
    session: Session, order: MedicationOrder, status: str, now: datetime, notes: str | None = None
) -> None:
    previous = order.status
    order.status = status
    order.updated_at = now
    order.last_step_at = now
    order.notes = notes or NOTES[status]
    request = session.get(MedicationRequest, order.medication_request_id)
    assert request is not None
    emit(session, order.clinic_id, "medication:updated", medication_event(order, request, previous), now)


def create_medication_order(
    db: Database,
    clinic_id: str,
    *,
    medication_name: str = "Medication",
    delivery_location: dict[str, str] | None = None,
    prescription_id: str | None = None,
    medication_request_id: str | None = None,
    refills_allowed: int = 0,
    prescription_expires_at: datetime | None = None,
    shipment_group_id: str | None = None,
    source: str | None = None,
    source_ref: str | None = None,
    now: datetime | None = None,
) -> OrderRef:
    """Route a prescription into the simulated pharmacy: a new medication order in ``validated``.

    Without ``medication_request_id`` a medication request (the prescription line) is created with
    ``prescription_id`` (new UUID if None), ``refills_allowed`` and ``prescription_expires_at``; with it,
    the order is one more dispensing of that request (a refill). ``shipment_group_id`` joins an open group
    of the clinic; otherwise a new group is made. ``source``/``source_ref`` record the caller (e.g.
    ``"prescriber"``, an appointment id). Emits medication:updated (validated, previous_status null).
    """
    with db.session() as session:
        return _create_order(
            session,
            clinic_id,
            medication_name=medication_name,
            delivery_location=delivery_location,
            prescription_id=prescription_id,
            medication_request_id=medication_request_id,
            refills_allowed=refills_allowed,
            prescription_expires_at=prescription_expires_at,
            shipment_group_id=shipment_group_id,
            source=source,
            source_ref=source_ref,
            now=_now(now),
        )


def _create_order(
    session: Session,
    clinic_id: str,
    *,
    medication_name: str,
    delivery_location: dict[str, str] | None,
    prescription_id: str | None,
    medication_request_id: str | None,
    refills_allowed: int,
    prescription_expires_at: datetime | None,
    shipment_group_id: str | None,
    source: str | None,
    source_ref: str | None,
    now: datetime,
    shipping_partner: str = "FedEx",
) -> OrderRef:
    if session.get(Clinic, clinic_id) is None:
        raise PharmacyError(f"unknown clinic {clinic_id}")
    if medication_request_id is not None:
        request = session.get(MedicationRequest, medication_request_id)
        if request is None or request.clinic_id != clinic_id:
            raise PharmacyError(f"unknown medication request {medication_request_id}")
    else:
        request = MedicationRequest(
            id=str(uuid.uuid4()),
            clinic_id=clinic_id,
            prescription_id=prescription_id or str(uuid.uuid4()),
            medication_name=medication_name,
            refills_allowed=refills_allowed,
            refills_used=0,
            expires_at=prescription_expires_at,
            delivery_location=dict(
                delivery_location
                or {"address": "456 Oak Ave", "city": "Austin", "state": "TX", "postal_code": "78702"}
            ),
            source=source,
            source_ref=source_ref,
            created_at=now,
        )
        session.add(request)
        session.flush()
    if shipment_group_id is not None:
        group = session.get(ShipmentGroup, shipment_group_id)
        if group is None or group.clinic_id != clinic_id or group.shipment_status in ("shipped", "cancelled"):
            raise PharmacyError(f"shipment group {shipment_group_id} is not open")
    else:
        group = ShipmentGroup(
            id=str(uuid.uuid4()),
            clinic_id=clinic_id,
            delivery_location=dict(request.delivery_location),
            shipping_partner=shipping_partner,
            delivery_method="next-day",
            created_at=now,
        )
        session.add(group)
        session.flush()
    seq = session.scalar(
        select(func.count())
        .select_from(MedicationOrder)
        .where(MedicationOrder.medication_request_id == request.id)
    )
    order = MedicationOrder(
        id=str(uuid.uuid4()),
        seq=int(seq or 0) + 1,
        clinic_id=clinic_id,
        medication_request_id=request.id,
        shipment_group_id=group.id,
        status="validated",
        notes=NOTES["validated"],
        created_at=now,
        updated_at=now,
        last_step_at=now,
    )
    session.add(order)
    session.flush()
    emit(session, clinic_id, "medication:updated", medication_event(order, request, None), now)
    return OrderRef(order.id, request.id, request.prescription_id, group.id, order.status)


def _advance(session: Session, order: MedicationOrder, now: datetime) -> str:
    if order.status in TERMINAL:
        raise PharmacyError(f"order {order.id} is {order.status}")
    target = NEXT_STATUS[order.status]
    group = _lock(session, ShipmentGroup, order.shipment_group_id)
    assert group is not None
    if target == "shipped":
        if group.shipment_status != "shipped":
            group.shipment_status = "shipped"
            group.shipped_at = now
        order.tracking_number = group.tracking_number
    _change(session, order, target, now)
    if target == "filled" and group.shipment_id is None:
        group.shipment_id = str(uuid.uuid4())
        group.shipment_status = "pending"
        group.tracking_number = _tracking_number(group.shipping_partner)
        group.shipment_created_at = now
        group.notes = "Signature required"
        session.flush()
        emit(session, order.clinic_id, "shipment:created", shipment_created_event(session, group), now)
    return target


def advance_order(db: Database, medication_order_id: str, now: datetime | None = None) -> str:
    """Move an order one step along its lifecycle (emitting its events); returns the new status."""
    with db.session() as session:
        order = _lock(session, MedicationOrder, medication_order_id)
        if order is None:
            raise PharmacyError(f"unknown medication order {medication_order_id}")
        return _advance(session, order, _now(now))


def cancel_order(
    db: Database, medication_order_id: str, reason: str | None = None, now: datetime | None = None
) -> None:
    """Cancel an order that has not shipped (validated, submitted or filled)."""
    with db.session() as session:
        order = _lock(session, MedicationOrder, medication_order_id)
        if order is None or order.status not in CANCELLABLE:
            raise PharmacyError(f"order {medication_order_id} cannot be cancelled")
        _change(session, order, "cancelled", _now(now), reason)


def cancel_shipment(
    db: Database, shipment_id: str, reason: str | None = None, now: datetime | None = None
) -> None:
    """Cancel a pending shipment: shipment:cancelled, and its filled orders become cancelled."""
    at = _now(now)
    with db.session() as session:
        group = session.scalars(select(ShipmentGroup).where(ShipmentGroup.shipment_id == shipment_id)).first()
        if group is None or group.shipment_status != "pending":
            raise PharmacyError(f"shipment {shipment_id} cannot be cancelled")
        order_ids = _group_order_ids(session, group.id)
        group.shipment_status = "cancelled"
        group.cancelled_at = at
        group.cancellation_reason = reason
        emit(
            session,
            group.clinic_id,
            "shipment:cancelled",
            {
                "shipment_id": group.shipment_id,
                "medication_orders": order_ids,
                "cancellation_reason": reason,
                "cancelled_at": _iso_ms(at),
            },
            at,
        )
        for oid in order_ids:
            order = _lock(session, MedicationOrder, oid)
            if order is not None and order.status in CANCELLABLE:
                _change(session, order, "cancelled", at, reason)


def order_status(db: Database, medication_order_id: str) -> str | None:
    with db.session() as session:
        order = session.get(MedicationOrder, medication_order_id)
        return order.status if order else None


def create_order_in(session: Session, clinic_id: str, **kwargs: Any) -> OrderRef:
    """``create_medication_order`` inside the caller's transaction (the caller's state change and the order
    commit together); keyword arguments as there, ``now`` required."""
    return _create_order(
        session,
        clinic_id,
        medication_name=kwargs.get("medication_name", "Medication"),
        delivery_location=kwargs.get("delivery_location"),
        prescription_id=kwargs.get("prescription_id"),
        medication_request_id=kwargs.get("medication_request_id"),
        refills_allowed=kwargs.get("refills_allowed", 0),
        prescription_expires_at=kwargs.get("prescription_expires_at"),
        shipment_group_id=kwargs.get("shipment_group_id"),
        source=kwargs.get("source"),
        source_ref=kwargs.get("source_ref"),
        now=kwargs["now"],
        shipping_partner=kwargs.get("shipping_partner", "FedEx"),
    )


def advance_order_in(session: Session, medication_order_id: str, now: datetime) -> str:
    """``advance_order`` inside the caller's transaction."""
    order = _lock(session, MedicationOrder, medication_order_id)
    if order is None:
        raise PharmacyError(f"unknown medication order {medication_order_id}")
    return _advance(session, order, now)


def advance_order_to(session: Session, medication_order_id: str, target: str, now: datetime) -> str:
    """Advance an order step by step until it reaches ``target`` (no-op when it is there or past it)."""
    line = ["validated", *NEXT_STATUS.values()]
    for _ in range(len(line)):
        order = session.get(MedicationOrder, medication_order_id)
        if order is None:
            raise PharmacyError(f"unknown medication order {medication_order_id}")
        if (
            order.status in TERMINAL
            or order.status not in line
            or line.index(order.status) >= line.index(target)
        ):
            return order.status
        advance_order_in(session, medication_order_id, now)
    return target


def order_for_source(session: Session, source: str, source_ref: str) -> MedicationOrder | None:
    """The first order of the medication request a partner flow created (``source``, ``source_ref``)."""
    return session.scalar(
        select(MedicationOrder)
        .join(MedicationRequest, MedicationRequest.id == MedicationOrder.medication_request_id)
        .where(MedicationRequest.source == source, MedicationRequest.source_ref == source_ref)
        .order_by(MedicationOrder.seq)
        .limit(1)
    )


def shipment_of(session: Session, medication_order_id: str) -> ShipmentGroup | None:
    order = session.get(MedicationOrder, medication_order_id)
    return session.get(ShipmentGroup, order.shipment_group_id) if order is not None else None


def tick(db: Database, now: datetime | None = None, step_seconds: float = DEFAULT_STEP_SECONDS) -> int:
    """Sandbox clock: advance every sandbox order not moved for ``step_seconds``; returns steps made."""
    at = _now(now)
    cutoff = at - timedelta(seconds=step_seconds)
    with db.session() as session:
        due = list(
            session.scalars(
                select(MedicationOrder.id)
                .join(Clinic, Clinic.id == MedicationOrder.clinic_id)
                .join(MedicationRequest, MedicationRequest.id == MedicationOrder.medication_request_id)
                .where(
                    Clinic.environment == "sandbox",
                    # orders routed by a partner flow move on that partner's sandbox clock, not this one
                    or_(
                        MedicationRequest.source.is_(None),
                        MedicationRequest.source.not_in(PARTNER_DRIVEN_SOURCES),
                    ),
                    MedicationOrder.status.not_in(TERMINAL),
                    MedicationOrder.last_step_at <= cutoff,
                )
                .order_by(MedicationOrder.last_step_at)
                .limit(200)
            )
        )
    moved = 0
    for oid in due:
        with db.session() as session:
            order = _lock(session, MedicationOrder, oid)
            if order is None or order.status in TERMINAL or order.last_step_at > cutoff:
                continue
            _advance(session, order, at)
            moved += 1
    return moved
