"""Pharmacy-operations models (seed 001, served under /api/external): clinics, their webhooks, the
simulated pharmacy's medication requests, orders, shipment groups and refills, and the pharmacy webhook
outbox. Tables holding PHI are marked in their docstrings. Same ``Base`` as the partner models."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from server.db.models import Base


class Clinic(Base):
    """A pharmacy-API client: one clinic, one clinic-scoped API key (SHA-256 hash for auth, Fernet copy
    to send as X-API-Key on webhook deliveries, PH-004) and a whsec_ signing secret (Fernet)."""

    __tablename__ = "pharmacy_clinics"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    environment: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_prefix: Mapped[str] = mapped_column(String(16))
    api_key_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    signing_secret_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime]


class ClinicWebhook(Base):
    """A webhook URL registered by a clinic (at most 10, unique per clinic)."""

    __tablename__ = "pharmacy_webhooks"
    __table_args__ = (
        UniqueConstraint("clinic_id", "webhook_url", name="uq_pharmacy_webhooks_clinic_url"),
        Index("ix_pharmacy_webhooks_clinic_created", "clinic_id", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    clinic_id: Mapped[str] = mapped_column(ForeignKey("pharmacy_clinics.id", ondelete="CASCADE"))
    webhook_url: Mapped[str] = mapped_column(String(2048))
    created_at: Mapped[datetime]


class MedicationRequest(Base):
    """PHI: a prescribed medication (the prescription line a refill refers to)."""

    __tablename__ = "pharmacy_medication_requests"
    __table_args__ = (Index("ix_pharmacy_medication_requests_source", "source", "source_ref"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    clinic_id: Mapped[str] = mapped_column(ForeignKey("pharmacy_clinics.id", ondelete="CASCADE"), index=True)
    prescription_id: Mapped[str] = mapped_column(String(36), index=True)
    medication_name: Mapped[str] = mapped_column(String(200))
    refills_allowed: Mapped[int] = mapped_column(Integer, default=0)
    refills_used: Mapped[int] = mapped_column(Integer, default=0)
    expires_at: Mapped[datetime | None] = mapped_column(nullable=True)
    delivery_location: Mapped[dict[str, Any]] = mapped_column(JSON)
    source: Mapped[str | None] = mapped_column(String(64), nullable=True)
    source_ref: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime]


class ShipmentGroup(Base):
    """PHI: orders shipped together, and the one shipment made for them (tracking, address)."""

    __tablename__ = "pharmacy_shipment_groups"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    clinic_id: Mapped[str] = mapped_column(ForeignKey("pharmacy_clinics.id", ondelete="CASCADE"), index=True)
    shipment_id: Mapped[str | None] = mapped_column(String(36), nullable=True, unique=True)
    shipment_status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    tracking_number: Mapped[str | None] = mapped_column(String(64), nullable=True)
    shipping_partner: Mapped[str] = mapped_column(String(100), default="FedEx")
    delivery_method: Mapped[str] = mapped_column(String(50), default="next-day")
    delivery_location: Mapped[dict[str, Any]] = mapped_column(JSON)
    notes: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    shipment_created_at: Mapped[datetime | None] = mapped_column(nullable=True)
    shipped_at: Mapped[datetime | None] = mapped_column(nullable=True)
    cancelled_at: Mapped[datetime | None] = mapped_column(nullable=True)
    cancellation_reason: Mapped[str | None] = mapped_column(String(500), nullable=True)
    created_at: Mapped[datetime]


class MedicationOrder(Base):
    """PHI: one dispensing of a medication request, moving validated → … → delivered (or cancelled)."""

    __tablename__ = "pharmacy_medication_orders"
    __table_args__ = (
        Index("ix_pharmacy_orders_request_created", "medication_request_id", "created_at", "seq"),
        Index("ix_pharmacy_orders_status_step", "status", "last_step_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, default=0)
    clinic_id: Mapped[str] = mapped_column(ForeignKey("pharmacy_clinics.id", ondelete="CASCADE"), index=True)
    medication_request_id: Mapped[str] = mapped_column(
        ForeignKey("pharmacy_medication_requests.id", ondelete="CASCADE")
    )
    shipment_group_id: Mapped[str] = mapped_column(
        ForeignKey("pharmacy_shipment_groups.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(String(16))
    tracking_number: Mapped[str | None] = mapped_column(String(64), nullable=True)
    notes: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    last_step_at: Mapped[datetime]


class RefillRequest(Base):
    """PHI: a refill asked through POST /refill-request, and the order it created."""

    __tablename__ = "pharmacy_refill_requests"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    clinic_id: Mapped[str] = mapped_column(ForeignKey("pharmacy_clinics.id", ondelete="CASCADE"), index=True)
    medication_request_id: Mapped[str] = mapped_column(
        ForeignKey("pharmacy_medication_requests.id", ondelete="CASCADE"), index=True
    )
    medication_order_id: Mapped[str] = mapped_column(ForeignKey("pharmacy_medication_orders.id"))
    created_at: Mapped[datetime]


class PharmacyDelivery(Base):
    """Pharmacy webhook outbox: one row per (event, registered webhook), written in the transaction of the
    state change. PHI in ``body``. Same schedule and dead letter as the partner outbox (D-029, PH-011)."""

    __tablename__ = "pharmacy_deliveries"
    __table_args__ = (
        Index("ix_pharmacy_deliveries_due", "delivery_status", "next_attempt_at"),
        Index("ix_pharmacy_deliveries_clinic_created", "clinic_id", "created_at", "seq"),
    )

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    event_id: Mapped[str] = mapped_column(String(36), index=True)
    clinic_id: Mapped[str] = mapped_column(ForeignKey("pharmacy_clinics.id", ondelete="CASCADE"))
    webhook_id: Mapped[str | None] = mapped_column(
        ForeignKey("pharmacy_webhooks.id", ondelete="SET NULL"), nullable=True
    )
    url: Mapped[str] = mapped_column(String(2048))
    event_name: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    delivery_status: Mapped[str] = mapped_column(String(16), default="pending")
    attempt_count: Mapped[int] = mapped_column(Integer, default=0)
    first_attempt_at: Mapped[datetime | None] = mapped_column(nullable=True)
    next_attempt_at: Mapped[datetime | None] = mapped_column(nullable=True)
    last_attempt_at: Mapped[datetime | None] = mapped_column(nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(nullable=True)
    claimed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    claimed_until: Mapped[datetime | None] = mapped_column(nullable=True)


class PharmacyDeliveryAttempt(Base):
    """One attempt of a pharmacy delivery."""

    __tablename__ = "pharmacy_delivery_attempts"
    __table_args__ = (Index("ix_pharmacy_attempts_delivery", "delivery_seq", "attempt_no"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    delivery_seq: Mapped[int] = mapped_column(ForeignKey("pharmacy_deliveries.seq", ondelete="CASCADE"))
    attempt_no: Mapped[int] = mapped_column(Integer)
    attempted_at: Mapped[datetime]
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    latency_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)
    outcome: Mapped[str] = mapped_column(String(32))
    error: Mapped[str | None] = mapped_column(String(500), nullable=True)
