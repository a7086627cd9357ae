"""The pharmacy outbox: an event is written, in the transaction of the state change that causes it, as
one delivery row per webhook the clinic has registered (PH-008: every event to every webhook)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.db.models_pharmacy import ClinicWebhook, PharmacyDelivery
from server.webhooks import signing


def emit(session: Session, clinic_id: str, event_name: str, event_data: dict[str, Any], now: datetime) -> str:
    """Queue ``{event_name, event_data}`` for every webhook of the clinic; returns the event id."""
    event_id = str(uuid.uuid4())
    body = signing.serialize({"event_name": event_name, "event_data": event_data}).decode("utf-8")
    hooks = session.scalars(
        select(ClinicWebhook).where(ClinicWebhook.clinic_id == clinic_id).order_by(ClinicWebhook.created_at)
    ).all()
    for hook in hooks:
        session.add(
            PharmacyDelivery(
                event_id=event_id,
                clinic_id=clinic_id,
                webhook_id=hook.id,
                url=hook.webhook_url,
                event_name=event_name,
                body=body,
                created_at=now,
                delivery_status="pending",
                attempt_count=0,
                next_attempt_at=now,
            )
        )
    return event_id
