"""The pharmacy API's operations: webhook registration (PH-008) and refill requests (PH-010)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from server import clock
from server.cursor import CursorCodec, filter_digest
from server.db.engine import Database
from server.db.models_pharmacy import (
    ClinicWebhook,
    MedicationOrder,
    MedicationRequest,
    PharmacyDelivery,
    RefillRequest,
    ShipmentGroup,
)
from server.errors import ApiError
from server.pharmacy.simulation import _create_order
from server.webhooks.url_safety import UnsafeWebhookUrl, check_webhook_url

MAX_WEBHOOKS = 10
REFILLABLE = frozenset({"shipped", "delivered"})
IN_PROGRESS = frozenset({"validated", "submitted", "filled"})


@dataclass(frozen=True)
class Registered:
    webhook_id: str
    created: bool


def _iso_ms(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def webhook_json(hook: ClinicWebhook) -> dict[str, str]:
    return {
        "webhook_id": hook.id,
        "clinic_id": hook.clinic_id,
        "webhook_url": hook.webhook_url,
        "created_at": _iso_ms(hook.created_at),
    }


def register_webhook(
    db: Database, clinic_id: str, body_clinic_id: str, url: str, environment: str
) -> Registered:
    """Order (x-validation-order): INVALID_WEBHOOK_URL, CLINIC_MISMATCH, WEBHOOK_LIMIT_EXCEEDED."""
    try:
        check_webhook_url(url, environment)
    except UnsafeWebhookUrl as exc:
        raise ApiError(
            "INVALID_WEBHOOK_URL",
            f"The webhook URL cannot be used: {exc}.",
            {"webhook_url": url, "reason": str(exc)},
        ) from None
    if body_clinic_id.lower() != clinic_id.lower():
        raise ApiError(
            "CLINIC_MISMATCH",
            "clinic_id is not the clinic this API key belongs to.",
            {"clinic_id": body_clinic_id},
        )
    for _attempt in range(2):
        try:
            with db.session() as session:
                existing = session.scalars(
                    select(ClinicWebhook).where(
                        ClinicWebhook.clinic_id == clinic_id, ClinicWebhook.webhook_url == url
                    )
                ).first()
                if existing is not None:
                    return Registered(existing.id, False)
                count = session.scalar(
                    select(func.count())
                    .select_from(ClinicWebhook)
                    .where(ClinicWebhook.clinic_id == clinic_id)
                )
                if int(count or 0) >= MAX_WEBHOOKS:
                    raise ApiError(
                        "WEBHOOK_LIMIT_EXCEEDED",
                        f"A clinic can register at most {MAX_WEBHOOKS} webhooks; delete one first.",
                        {"limit": MAX_WEBHOOKS},
                    )
                hook = ClinicWebhook(
                    id=str(uuid.uuid4()), clinic_id=clinic_id, webhook_url=url, created_at=clock.real_now()
                )
                session.add(hook)
                session.flush()
                return Registered(hook.id, True)
        except IntegrityError:  # a concurrent registration of the same URL won: answer with it
            continue
    raise ApiError("INTERNAL_ERROR", "The webhook could not be registered; retry.")  # pragma: no cover


def list_webhooks(
    db: Database, codec: CursorCodec, clinic_id: str, limit: int, cursor: str | None
) -> tuple[list[dict[str, str]], str | None]:
    digest = filter_digest("pharmacy_webhooks", {"clinic": clinic_id})
    with db.session() as session:
        stmt = select(ClinicWebhook).where(ClinicWebhook.clinic_id == clinic_id)
        if cursor:
            after_t, after_id = codec.decode(cursor, digest)
            stmt = stmt.where(
                (ClinicWebhook.created_at > after_t)
                | ((ClinicWebhook.created_at == after_t) & (ClinicWebhook.id > str(after_id)))
            )
        rows = list(
            session.scalars(stmt.order_by(ClinicWebhook.created_at, ClinicWebhook.id).limit(limit + 1))
        )
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = codec.encode(rows[-1].created_at, rows[-1].id, digest) if more and rows else None
    return [webhook_json(h) for h in rows], next_cursor


def delete_webhook(db: Database, clinic_id: str, webhook_id: str) -> None:
    with db.session() as session:
        hook = session.get(ClinicWebhook, webhook_id)
        if hook is None or hook.clinic_id != clinic_id:
            raise ApiError(
                "WEBHOOK_NOT_FOUND", f"Webhook {webhook_id} was not found.", {"webhook_id": webhook_id}
            )
        # Pending deliveries to it stop (one already in flight may still arrive).
        for delivery in session.scalars(
            select(PharmacyDelivery).where(
                PharmacyDelivery.webhook_id == webhook_id,
                PharmacyDelivery.delivery_status.in_(("pending", "pending_retry")),
            )
        ):
            delivery.delivery_status = "cancelled"
            delivery.next_attempt_at = None
        session.delete(hook)


def create_refill(
    db: Database, clinic_id: str, medication_request_id: str, shipment_group_id: str | None
) -> tuple[str, str]:
    """PH-010: returns (refill_request_id, medication_order_id)."""
    now = clock.real_now()
    with db.session() as session:
        backend = session.get_bind().dialect.name
        request = session.get(
            MedicationRequest, medication_request_id, with_for_update=backend == "postgresql"
        )
        if request is None or request.clinic_id != clinic_id:
            raise ApiError(
                "MEDICATION_REQUEST_NOT_FOUND",
                f"Medication request {medication_request_id} was not found.",
                {"medication_request_id": medication_request_id},
            )
        if shipment_group_id is not None:
            group = session.get(ShipmentGroup, shipment_group_id)
            if (
                group is None
                or group.clinic_id != clinic_id
                or group.shipment_status in ("shipped", "cancelled")
            ):
                raise ApiError(
                    "SHIPMENT_GROUP_NOT_FOUND",
                    f"Shipment group {shipment_group_id} was not found or has already shipped.",
                    {"shipment_group_id": shipment_group_id},
                )
        pending = session.execute(
            select(RefillRequest.id, MedicationOrder.id)
            .join(MedicationOrder, MedicationOrder.id == RefillRequest.medication_order_id)
            .where(RefillRequest.medication_request_id == request.id, MedicationOrder.status.in_(IN_PROGRESS))
            .limit(1)
        ).first()
        if pending is not None:
            raise ApiError(
                "REFILL_ALREADY_PENDING",
                "A refill of this medication request is already in progress.",
                {"refill_request_id": pending[0], "medication_order_id": pending[1]},
            )
        latest = session.scalars(
            select(MedicationOrder)
            .where(MedicationOrder.medication_request_id == request.id)
            .order_by(MedicationOrder.created_at.desc(), MedicationOrder.seq.desc())
            .limit(1)
        ).first()
        if latest is None or latest.status not in REFILLABLE:
            status = latest.status if latest else None
            raise ApiError(
                "REFILL_NOT_ALLOWED",
                "Refills are only available for medications that have been shipped or delivered.",
                {"medication_order_id": latest.id if latest else None, "status": status},
            )
        if request.expires_at is not None and request.expires_at <= now:
            raise ApiError(
                "PRESCRIPTION_EXPIRED",
                "The prescription has expired; a new prescription is needed.",
                {"prescription_id": request.prescription_id, "expired_at": _iso_ms(request.expires_at)},
            )
        if request.refills_used >= request.refills_allowed:
            raise ApiError(
                "NO_REFILLS_REMAINING",
                "The prescription has no refills left.",
                {"refills_allowed": request.refills_allowed, "refills_used": request.refills_used},
            )
        ref = _create_order(
            session,
            clinic_id,
            medication_name=request.medication_name,
            delivery_location=None,
            prescription_id=None,
            medication_request_id=request.id,
            refills_allowed=0,
            prescription_expires_at=None,
            shipment_group_id=shipment_group_id,
            source="refill",
            source_ref=None,
            now=now,
        )
        request.refills_used += 1
        refill = RefillRequest(
            id=str(uuid.uuid4()),
            clinic_id=clinic_id,
            medication_request_id=request.id,
            medication_order_id=ref.medication_order_id,
            created_at=now,
        )
        session.add(refill)
        return refill.id, ref.medication_order_id
