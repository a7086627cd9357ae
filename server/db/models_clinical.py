"""Clinical-tier tables (seed 002): appointments, transactions, patient addresses, and the PHI audit trail.

Every table here holds PHI except ``audit_logs``, which holds who touched which PHI record (never the PHI).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from server.db.models import Base


class PatientAddress(Base):
    """PHI: the patient's postal address (one per patient)."""

    __tablename__ = "patient_addresses"

    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"), primary_key=True)
    line1: Mapped[str] = mapped_column(String(200))
    line2: Mapped[str | None] = mapped_column(String(200), nullable=True)
    city: Mapped[str] = mapped_column(String(100))
    state: Mapped[str] = mapped_column(String(8))
    postal_code: Mapped[str] = mapped_column(String(16))
    country: Mapped[str] = mapped_column(String(2))


class ClinicalAppointment(Base):
    """PHI: an appointment created by enrollment (``appt_...``). Its status, review, fulfillment and payment
    are read live from the referral it belongs to, so they never drift from the referral tier's view."""

    __tablename__ = "clinical_appointments"
    __table_args__ = (
        Index("ix_clinical_appointments_patient", "patient_id", "created_at", "id"),
        Index("ix_clinical_appointments_partner", "partner_id", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    partner_id: Mapped[str] = mapped_column(ForeignKey("partners.id", ondelete="CASCADE"))
    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"))
    referral_id: Mapped[str] = mapped_column(ForeignKey("referrals.id", ondelete="CASCADE"), index=True)
    intake_submission_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # set for appointments created by POST /partner/prescriptions (appt_partner_..., no intake)
    prescription_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    product_category: Mapped[str] = mapped_column(String(64))
    condition: Mapped[str] = mapped_column(String(200))
    form_title: Mapped[str] = mapped_column(String(200))
    submitted_at: Mapped[datetime]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class ClinicalTransaction(Base):
    """PHI: one payment of a patient (line items, card brand and last4, simulated payment intent)."""

    __tablename__ = "clinical_transactions"
    __table_args__ = (Index("ix_clinical_transactions_patient", "patient_id", "created_at", "id"),)

    id: Mapped[str] = mapped_column(String(48), primary_key=True)
    partner_id: Mapped[str] = mapped_column(ForeignKey("partners.id", ondelete="CASCADE"), index=True)
    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"))
    appointment_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    referral_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    type: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    amount_cents: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    description: Mapped[str] = mapped_column(String(500))
    line_items: Mapped[list[Any]] = mapped_column(JSON)
    card_brand: Mapped[str | None] = mapped_column(String(40), nullable=True)
    card_last4: Mapped[str | None] = mapped_column(String(4), nullable=True)
    payment_intent_id: Mapped[str | None] = mapped_column(String(80), nullable=True)
    refund_amount_cents: Mapped[int | None] = mapped_column(Integer, nullable=True)
    refund_reason: Mapped[str | None] = mapped_column(String(500), nullable=True)
    refunded_at: Mapped[datetime | None] = mapped_column(nullable=True)
    created_at: Mapped[datetime]


class AuditLog(Base):
    """Append-only PHI audit trail (seed 002 §3.2, AUDIT_LOG_SCHEMA_VERSION = 1).

    On PostgreSQL a trigger (migration 0003) rejects every UPDATE and DELETE; the code only ever inserts.
    """

    __tablename__ = "audit_logs"
    __table_args__ = (
        Index("ix_audit_logs_patient_at", "patient_id", "at"),
        Index("ix_audit_logs_partner_at", "partner_id", "at"),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    at: Mapped[datetime]
    action: Mapped[str] = mapped_column(String(64))
    category: Mapped[str] = mapped_column(String(32))
    entity_type: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[str] = mapped_column(String(64))
    parent_entity_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    patient_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    partner_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    actor_uid: Mapped[str] = mapped_column(String(64))
    actor_email: Mapped[str | None] = mapped_column(String(254), nullable=True)
    actor_role: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(32))
    source_name: Mapped[str] = mapped_column(String(128))
    summary: Mapped[str] = mapped_column(String(500))
    diff: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True)
    phi_redacted: Mapped[bool] = mapped_column(default=True)
    correlation_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    ip_address: Mapped[str | None] = mapped_column(String(64), nullable=True)
    user_agent: Mapped[str | None] = mapped_column(Text, nullable=True)
    schema_version: Mapped[int] = mapped_column(Integer, default=1)


class Prescriber(Base):
    """A clinical partner's own licensed prescriber (seed 002 §11.1.1, §13.6)."""

    __tablename__ = "prescribers"
    __table_args__ = (
        UniqueConstraint("partner_id", "partner_reference", name="uq_prescribers_partner_reference"),
        Index("ix_prescribers_partner_created", "partner_id", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(48), primary_key=True)
    partner_id: Mapped[str] = mapped_column(ForeignKey("partners.id", ondelete="CASCADE"))
    partner_reference: Mapped[str | None] = mapped_column(String(128), nullable=True)
    request_fingerprint: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    first_name: Mapped[str] = mapped_column(String(100))
    last_name: Mapped[str] = mapped_column(String(100))
    email: Mapped[str] = mapped_column(String(254))
    npi: Mapped[str | None] = mapped_column(String(10), nullable=True)
    dea_number: Mapped[str | None] = mapped_column(String(9), nullable=True)
    licenses: Mapped[list[Any]] = mapped_column(JSON)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class PartnerPrescription(Base):
    """PHI: a pre-signed prescription submitted by a clinical partner (seed 002 §11.1.5, §13.7)."""

    __tablename__ = "partner_prescriptions"
    __table_args__ = (
        UniqueConstraint(
            "partner_id", "partner_reference", name="uq_partner_prescriptions_partner_reference"
        ),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    partner_id: Mapped[str] = mapped_column(ForeignKey("partners.id", ondelete="CASCADE"), index=True)
    partner_reference: Mapped[str | None] = mapped_column(String(128), nullable=True)
    request_fingerprint: Mapped[str] = mapped_column(String(64))
    appointment_id: Mapped[str] = mapped_column(String(64))
    rx_id: Mapped[str] = mapped_column(String(32))
    referral_id: Mapped[str] = mapped_column(String(40))
    patient_id: Mapped[str] = mapped_column(String(40), index=True)
    prescriber_id: Mapped[str] = mapped_column(String(48))
    medications: Mapped[list[Any]] = mapped_column(JSON)
    notes: Mapped[str | None] = mapped_column(Text, nullable=True)
    # the request's metadata, echoed in prescription.* events (C-022)
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSON, nullable=True)
    fulfillment_status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
