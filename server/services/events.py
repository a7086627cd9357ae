"""Transactional outbox: events are rows written in the same transaction as the change that causes them.

The envelope is exactly the spec's `webhooks` entry for the event type (seed 000 §7.2): event_id,
event_type, referral_id, partner_reference, data, metadata, created_at; clinical partners also get
patient_id / appointment_id. Delivery (signing, retries) is sandbox part 2.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from server import ids
from server.clock import iso
from server.db.engine import wake_outbox
from server.db.models import Event, Referral
from stealth_spec.events import event_model


def referral_event_data(
    referral: Referral, event_type: str, occurred_at: datetime, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "status": referral.status,
        "product_category": referral.product_category,
        "occurred_at": iso(occurred_at),
    }
    data.update(extra or {})
    return data


def write_referral_event(
    session: Session,
    referral: Referral,
    event_type: str,
    occurred_at: datetime,
    *,
    partner_tier: str,
    extra: dict[str, Any] | None = None,
) -> Event:
    event_id = ids.event_id()
    payload: dict[str, Any] = {
        "event_id": event_id,
        "event_type": event_type,
        "referral_id": referral.id,
        "partner_reference": referral.partner_reference,
    }
    if partner_tier == "clinical":
        if referral.patient_id:
            payload["patient_id"] = referral.patient_id
        if referral.appointment_id:
            payload["appointment_id"] = referral.appointment_id
    payload["data"] = referral_event_data(referral, event_type, occurred_at, extra)
    payload["metadata"] = dict(referral.metadata_ or {})
    payload["created_at"] = iso(occurred_at)
    return add_event(
        session,
        partner_id=referral.partner_id,
        event_type=event_type,
        payload=payload,
        at=occurred_at,
        referral_id=referral.id,
    )


def add_event(
    session: Session,
    *,
    partner_id: str,
    event_type: str,
    payload: dict[str, Any],
    at: datetime,
    referral_id: str | None = None,
) -> Event:
    """Write an outbox event in the caller's transaction, its payload checked against the generated model.

    The model forbids unknown fields and checks every type, pattern and enum of the spec's webhook schema, so a
    payload that would break the contract fails here, inside the transaction, and the state change rolls back.
    """
    event_model(event_type).model_validate(payload)
    event = Event(
        id=payload["event_id"],
        partner_id=partner_id,
        event_type=event_type,
        referral_id=referral_id,
        payload=payload,
        created_at=at,
        delivery_status="pending",
        attempt_count=0,
        next_attempt_at=at,
    )
    session.add(event)
    wake_outbox(session)
    return event
