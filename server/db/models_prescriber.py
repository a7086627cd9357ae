"""Prescriber-tier table (seed 003): appointments a partner submits for physician review.

PHI: the patient demographics and intake answers as submitted, the prescription, the denial and the routing. The
patient profile itself is a shared ``patients`` row (ptn_...), reused by email within a partner.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from server.db.models import Base


class PrescriberAppointment(Base):
    __tablename__ = "prescriber_appointments"
    __table_args__ = (
        UniqueConstraint("partner_id", "partner_reference", name="uq_prescriber_appointments_reference"),
        Index("ix_prescriber_appointments_partner_created", "partner_id", "created_at", "id"),
        Index("ix_prescriber_appointments_partner_status", "partner_id", "status"),
    )

    id: Mapped[str] = mapped_column(String(48), primary_key=True)
    partner_id: Mapped[str] = mapped_column(ForeignKey("partners.id", ondelete="CASCADE"))
    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"), index=True)
    partner_reference: Mapped[str] = mapped_column(String(128))
    request_fingerprint: Mapped[str] = mapped_column(String(64))
    condition: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32))
    scenario: Mapped[str] = mapped_column(String(64))
    pharmacy_preference: Mapped[str] = mapped_column(String(16))
    preferred_pharmacy_id: Mapped[str | None] = mapped_column(String(48), nullable=True)
    patient_email: Mapped[str] = mapped_column(String(254))
    patient: Mapped[dict[str, Any]] = mapped_column(JSON)
    intake_schema_version: Mapped[str] = mapped_column(String(16))
    intake_answers: Mapped[list[Any]] = mapped_column(JSON)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSON)
    review_fee: Mapped[dict[str, Any]] = mapped_column(JSON)
    prescription: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    denial: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    routing: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    medication_order_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    version: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    reviewed_at: Mapped[datetime | None] = mapped_column(nullable=True)

    # optimistic concurrency: the background reviewer and an API call never both apply a change to one row
    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012
