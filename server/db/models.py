"""SQLAlchemy 2 models. Tables holding PHI are marked in their docstrings."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from server.db.types import UTCDateTime

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON,
        list[Any]: JSON,
    }


class Partner(Base):
    """A partner organisation and its configuration (partner_configs in the seeds)."""

    __tablename__ = "partners"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    tier: Mapped[str] = mapped_column(String(16))
    environment: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]
    rate_limit_per_minute: Mapped[int | None] = mapped_column(Integer, nullable=True)
    webhook_url: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    webhook_secret_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    allowed_ips: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True)
    compliance_review_due_at: Mapped[datetime | None] = mapped_column(nullable=True)
    brand_primary_color: Mapped[str] = mapped_column(String(16), default="#1f4e79")
    brand_accent_color: Mapped[str] = mapped_column(String(16), default="#f2a900")
    clock_offset_seconds: Mapped[float] = mapped_column(Float, default=0.0)

    api_key: Mapped[ApiKey] = relationship(back_populates="partner", uselist=False)


class ApiKey(Base):
    """A partner's API key, stored only as SHA-256 hashes; the previous key stays valid for a while."""

    __tablename__ = "api_keys"

    partner_id: Mapped[str] = mapped_column(ForeignKey("partners.id", ondelete="CASCADE"), primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    key_prefix: Mapped[str] = mapped_column(String(16))
    previous_key_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    previous_key_expires_at: Mapped[datetime | None] = mapped_column(nullable=True)
    created_at: Mapped[datetime]
    rotated_at: Mapped[datetime | None] = mapped_column(nullable=True)

    partner: Mapped[Partner] = relationship(back_populates="api_key")


class Product(Base):
    """A product category offered to one partner."""

    __tablename__ = "products"
    __table_args__ = (UniqueConstraint("partner_id", "category", name="uq_products_partner_category"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    partner_id: Mapped[str] = mapped_column(ForeignKey("partners.id", ondelete="CASCADE"), index=True)
    category: Mapped[str] = mapped_column(String(64))
    display_name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text)
    jurisdictions: Mapped[list[Any]] = mapped_column(JSON)
    requires_payment_at_enrollment: Mapped[bool] = mapped_column(Boolean, default=True)
    price_cents: Mapped[int] = mapped_column(Integer)
    price_min_cents: Mapped[int] = mapped_column(Integer)
    price_max_cents: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    position: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    extra: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class Referral(Base):
    __tablename__ = "referrals"
    __table_args__ = (
        UniqueConstraint("partner_id", "partner_reference", name="uq_referrals_partner_reference"),
        Index("ix_referrals_partner_created", "partner_id", "created_at", "id"),
        Index("ix_referrals_partner_status_created", "partner_id", "status", "created_at", "id"),
        Index("ix_referrals_partner_category_created", "partner_id", "product_category", "created_at", "id"),
        Index("ix_referrals_partner_status_expires", "partner_id", "status", "expires_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    partner_id: Mapped[str] = mapped_column(ForeignKey("partners.id", ondelete="CASCADE"))
    partner_reference: Mapped[str] = mapped_column(String(128))
    product_category: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32))
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    request_fingerprint: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    cancelled_at: Mapped[datetime | None] = mapped_column(nullable=True)
    cancelled_by: Mapped[str | None] = mapped_column(String(16), nullable=True)
    cancel_reason: Mapped[str | None] = mapped_column(String(500), nullable=True)
    denial_category: Mapped[str | None] = mapped_column(String(64), nullable=True)
    patient_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    appointment_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    fulfillment_status: Mapped[str | None] = mapped_column(String(32), nullable=True)

    history: Mapped[list[ReferralStatusHistory]] = relationship(
        back_populates="referral", order_by="ReferralStatusHistory.id", cascade="all, delete-orphan"
    )
    fulfillment: Mapped[Fulfillment | None] = relationship(back_populates="referral", uselist=False)
    payment: Mapped[Payment | None] = relationship(back_populates="referral", uselist=False)


class ReferralStatusHistory(Base):
    __tablename__ = "referral_status_history"
    __table_args__ = (Index("ix_history_referral", "referral_id", "id"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    referral_id: Mapped[str] = mapped_column(ForeignKey("referrals.id", ondelete="CASCADE"))
    partner_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime]
    # The referral's (never changing) category, copied so the summary counts without a join.
    product_category: Mapped[str] = mapped_column(String(64))

    referral: Mapped[Referral] = relationship(back_populates="history")

    @classmethod
    def entry(cls, referral: Referral, status: str, at: datetime) -> ReferralStatusHistory:
        """The row recording that ``referral`` entered ``status`` at ``at`` (every writer builds it here)."""
        return cls(
            referral_id=referral.id,
            partner_id=referral.partner_id,
            status=status,
            at=at,
            product_category=referral.product_category,
        )


# Covering on PostgreSQL: the summary's counts over a window are an index-only range scan.
Index(
    "ix_history_partner_at_cover",
    ReferralStatusHistory.partner_id,
    ReferralStatusHistory.at,
    postgresql_include=["status", "product_category", "referral_id"],
)


class Fulfillment(Base):
    """Shipment progress; tracking_number is PHI and never leaves the sandbox's own tracking page."""

    __tablename__ = "fulfillments"

    referral_id: Mapped[str] = mapped_column(ForeignKey("referrals.id", ondelete="CASCADE"), primary_key=True)
    status: Mapped[str | None] = mapped_column(String(32), nullable=True)
    carrier: Mapped[str | None] = mapped_column(String(32), nullable=True)
    tracking_number: Mapped[str | None] = mapped_column(String(64), nullable=True)
    estimated_delivery: Mapped[date | None] = mapped_column(Date, nullable=True)
    shipped_at: Mapped[datetime | None] = mapped_column(nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(nullable=True)
    exception_type: Mapped[str | None] = mapped_column(String(64), nullable=True)
    updated_at: Mapped[datetime | None] = mapped_column(nullable=True)

    referral: Mapped[Referral] = relationship(back_populates="fulfillment")


class Payment(Base):
    """Payment for a referral; card_last4 is PHI."""

    __tablename__ = "payments"
    __table_args__ = (
        Index("ix_payments_partner_paid", "partner_id", "paid_at"),
        Index("ix_payments_partner_refunded", "partner_id", "refunded_at"),  # summary: refunds in a window
    )

    referral_id: Mapped[str] = mapped_column(ForeignKey("referrals.id", ondelete="CASCADE"), primary_key=True)
    partner_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32))
    amount_cents: Mapped[int | None] = mapped_column(Integer, nullable=True)
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    paid_at: Mapped[datetime | None] = mapped_column(nullable=True)
    refunded_at: Mapped[datetime | None] = mapped_column(nullable=True)
    card_last4: Mapped[str | None] = mapped_column(String(4), nullable=True)

    referral: Mapped[Referral] = relationship(back_populates="payment")


class TrackingToken(Base):
    """A tokenized tracking link (only its SHA-256 is stored)."""

    __tablename__ = "tracking_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    referral_id: Mapped[str] = mapped_column(ForeignKey("referrals.id", ondelete="CASCADE"), index=True)
    partner_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]


class Patient(Base):
    """PHI: the patient profile created at enrollment (served to the clinical tier later)."""

    __tablename__ = "patients"
    __table_args__ = (Index("ix_patients_partner_created", "partner_id", "created_at", "id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    partner_id: Mapped[str] = mapped_column(ForeignKey("partners.id", ondelete="CASCADE"))
    referral_id: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    first_name: Mapped[str] = mapped_column(String(100))
    last_name: Mapped[str] = mapped_column(String(100))
    email: Mapped[str] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(32), nullable=True)
    date_of_birth: Mapped[date | None] = mapped_column(Date, nullable=True)
    sex: Mapped[str | None] = mapped_column(String(16), nullable=True)
    state: Mapped[str | None] = mapped_column(String(8), nullable=True)
    country: Mapped[str] = mapped_column(String(2), default="US")
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class IntakeSubmission(Base):
    """PHI: intake questionnaire answers submitted on the enrollment page."""

    __tablename__ = "intake_submissions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    referral_id: Mapped[str] = mapped_column(ForeignKey("referrals.id", ondelete="CASCADE"), index=True)
    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"), index=True)
    product_category: Mapped[str] = mapped_column(String(64))
    answers: Mapped[list[Any]] = mapped_column(JSON)
    submitted_at: Mapped[datetime]


class Event(Base):
    """Transactional outbox: one row per webhook event, written with the state change that causes it."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_partner_created", "partner_id", "created_at", "seq"),
        Index("ix_events_delivery_due", "delivery_status", "next_attempt_at"),
    )

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    id: Mapped[str] = mapped_column(String(32), unique=True)
    partner_id: Mapped[str] = mapped_column(ForeignKey("partners.id", ondelete="CASCADE"))
    event_type: Mapped[str] = mapped_column(String(64))
    referral_id: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime]
    delivery_status: Mapped[str] = mapped_column(String(16), default="pending")
    attempt_count: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(nullable=True)
    last_attempt_at: Mapped[datetime | None] = mapped_column(nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(nullable=True)
    claimed_until: Mapped[datetime | None] = mapped_column(nullable=True)
    # sandbox part 2 (webhook delivery, migration 0002)
    body: Mapped[str | None] = mapped_column(Text, nullable=True)
    first_attempt_at: Mapped[datetime | None] = mapped_column(nullable=True)
    auto_attempt_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    redelivery_requested_at: Mapped[datetime | None] = mapped_column(nullable=True)
    claimed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    has_failed: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")


class EventAttempt(Base):
    """One delivery attempt of an event (written by the dispatcher, sandbox part 2)."""

    __tablename__ = "event_attempts"
    __table_args__ = (Index("ix_event_attempts_event", "event_seq", "attempt_no"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    event_seq: Mapped[int] = mapped_column(ForeignKey("events.seq", ondelete="CASCADE"))
    attempt_no: Mapped[int] = mapped_column(Integer)
    attempted_at: Mapped[datetime]
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    latency_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    # sandbox part 2 (migration 0002)
    url: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    outcome: Mapped[str | None] = mapped_column(String(32), nullable=True)
    redelivery: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")


class SandboxReferralProgress(Base):
    """Sandbox part 2: when the simulation last moved a referral (auto-advance counts from here)."""

    __tablename__ = "sandbox_referral_progress"

    referral_id: Mapped[str] = mapped_column(ForeignKey("referrals.id", ondelete="CASCADE"), primary_key=True)
    partner_id: Mapped[str] = mapped_column(String(64), index=True)
    last_step_at: Mapped[datetime]


from server.db import models_pharmacy as _models_pharmacy  # noqa: E402,F401  (pharmacy tables on this Base)
from server.db import models_prescriber as _models_prescriber  # noqa: E402,F401  (prescriber tables on this Base)
