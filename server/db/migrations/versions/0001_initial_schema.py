"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-23 11:45:13.044988
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import server.db.types

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "partners",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("slug", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("tier", sa.String(length=16), nullable=False),
        sa.Column("environment", sa.String(length=16), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", server.db.types.UTCDateTime(), nullable=False),
        sa.Column("rate_limit_per_minute", sa.Integer(), nullable=True),
        sa.Column("webhook_url", sa.String(length=2048), nullable=True),
        sa.Column("webhook_secret_encrypted", sa.LargeBinary(), nullable=False),
        sa.Column("allowed_ips", sa.JSON(), nullable=True),
        sa.Column("compliance_review_due_at", server.db.types.UTCDateTime(), nullable=True),
        sa.Column("brand_primary_color", sa.String(length=16), nullable=False),
        sa.Column("brand_accent_color", sa.String(length=16), nullable=False),
        sa.Column("clock_offset_seconds", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_partners")),
        sa.UniqueConstraint("slug", name=op.f("uq_partners_slug")),
    )
    op.create_table(
        "api_keys",
        sa.Column("partner_id", sa.String(length=64), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("key_prefix", sa.String(length=16), nullable=False),
        sa.Column("previous_key_hash", sa.String(length=64), nullable=True),
        sa.Column("previous_key_expires_at", server.db.types.UTCDateTime(), nullable=True),
        sa.Column("created_at", server.db.types.UTCDateTime(), nullable=False),
        sa.Column("rotated_at", server.db.types.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name=op.f("fk_api_keys_partner_id_partners"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("partner_id", name=op.f("pk_api_keys")),
    )
    op.create_table(
        "events",
        sa.Column(
            "seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("partner_id", sa.String(length=64), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("referral_id", sa.String(length=40), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", server.db.types.UTCDateTime(), nullable=False),
        sa.Column("delivery_status", sa.String(length=16), nullable=False),
        sa.Column("attempt_count", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", server.db.types.UTCDateTime(), nullable=True),
        sa.Column("last_attempt_at", server.db.types.UTCDateTime(), nullable=True),
        sa.Column("delivered_at", server.db.types.UTCDateTime(), nullable=True),
        sa.Column("claimed_until", server.db.types.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name=op.f("fk_events_partner_id_partners"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_events")),
        sa.UniqueConstraint("id", name=op.f("uq_events_id")),
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index("ix_events_delivery_due", ["delivery_status", "next_attempt_at"], unique=False)
        batch_op.create_index("ix_events_partner_created", ["partner_id", "created_at", "seq"], unique=False)
        batch_op.create_index(batch_op.f("ix_events_referral_id"), ["referral_id"], unique=False)

    op.create_table(
        "patients",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("partner_id", sa.String(length=64), nullable=False),
        sa.Column("referral_id", sa.String(length=40), nullable=True),
        sa.Column("first_name", sa.String(length=100), nullable=False),
        sa.Column("last_name", sa.String(length=100), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("phone", sa.String(length=32), nullable=True),
        sa.Column("date_of_birth", sa.Date(), nullable=True),
        sa.Column("sex", sa.String(length=16), nullable=True),
        sa.Column("state", sa.String(length=8), nullable=True),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("created_at", server.db.types.UTCDateTime(), nullable=False),
        sa.Column("updated_at", server.db.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name=op.f("fk_patients_partner_id_partners"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_patients")),
    )
    with op.batch_alter_table("patients", schema=None) as batch_op:
        batch_op.create_index("ix_patients_partner_created", ["partner_id", "created_at", "id"], unique=False)
        batch_op.create_index(batch_op.f("ix_patients_referral_id"), ["referral_id"], unique=False)

    op.create_table(
        "products",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("partner_id", sa.String(length=64), nullable=False),
        sa.Column("category", sa.String(length=64), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("jurisdictions", sa.JSON(), nullable=False),
        sa.Column("requires_payment_at_enrollment", sa.Boolean(), nullable=False),
        sa.Column("price_cents", sa.Integer(), nullable=False),
        sa.Column("price_min_cents", sa.Integer(), nullable=False),
        sa.Column("price_max_cents", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("extra", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name=op.f("fk_products_partner_id_partners"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_products")),
        sa.UniqueConstraint("partner_id", "category", name="uq_products_partner_category"),
    )
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_products_partner_id"), ["partner_id"], unique=False)

    op.create_table(
        "referrals",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("partner_id", sa.String(length=64), nullable=False),
        sa.Column("partner_reference", sa.String(length=128), nullable=False),
        sa.Column("product_category", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("request_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("created_at", server.db.types.UTCDateTime(), nullable=False),
        sa.Column("updated_at", server.db.types.UTCDateTime(), nullable=False),
        sa.Column("expires_at", server.db.types.UTCDateTime(), nullable=False),
        sa.Column("cancelled_at", server.db.types.UTCDateTime(), nullable=True),
        sa.Column("cancelled_by", sa.String(length=16), nullable=True),
        sa.Column("cancel_reason", sa.String(length=500), nullable=True),
        sa.Column("denial_category", sa.String(length=64), nullable=True),
        sa.Column("patient_id", sa.String(length=40), nullable=True),
        sa.Column("appointment_id", sa.String(length=64), nullable=True),
        sa.Column("fulfillment_status", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name=op.f("fk_referrals_partner_id_partners"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_referrals")),
        sa.UniqueConstraint("partner_id", "partner_reference", name="uq_referrals_partner_reference"),
    )
    with op.batch_alter_table("referrals", schema=None) as batch_op:
        batch_op.create_index(
            "ix_referrals_partner_category_created",
            ["partner_id", "product_category", "created_at", "id"],
            unique=False,
        )
        batch_op.create_index(
            "ix_referrals_partner_created", ["partner_id", "created_at", "id"], unique=False
        )
        batch_op.create_index(
            "ix_referrals_partner_status_created", ["partner_id", "status", "created_at", "id"], unique=False
        )
        batch_op.create_index(
            "ix_referrals_partner_status_expires", ["partner_id", "status", "expires_at"], unique=False
        )

    op.create_table(
        "event_attempts",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("event_seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("attempt_no", sa.Integer(), nullable=False),
        sa.Column("attempted_at", server.db.types.UTCDateTime(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Integer(), nullable=True),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(
            ["event_seq"], ["events.seq"], name=op.f("fk_event_attempts_event_seq_events"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_attempts")),
    )
    with op.batch_alter_table("event_attempts", schema=None) as batch_op:
        batch_op.create_index("ix_event_attempts_event", ["event_seq", "attempt_no"], unique=False)

    op.create_table(
        "fulfillments",
        sa.Column("referral_id", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=True),
        sa.Column("carrier", sa.String(length=32), nullable=True),
        sa.Column("tracking_number", sa.String(length=64), nullable=True),
        sa.Column("estimated_delivery", sa.Date(), nullable=True),
        sa.Column("shipped_at", server.db.types.UTCDateTime(), nullable=True),
        sa.Column("delivered_at", server.db.types.UTCDateTime(), nullable=True),
        sa.Column("exception_type", sa.String(length=64), nullable=True),
        sa.Column("updated_at", server.db.types.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["referral_id"],
            ["referrals.id"],
            name=op.f("fk_fulfillments_referral_id_referrals"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("referral_id", name=op.f("pk_fulfillments")),
    )
    op.create_table(
        "intake_submissions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("referral_id", sa.String(length=40), nullable=False),
        sa.Column("patient_id", sa.String(length=40), nullable=False),
        sa.Column("product_category", sa.String(length=64), nullable=False),
        sa.Column("answers", sa.JSON(), nullable=False),
        sa.Column("submitted_at", server.db.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patients.id"],
            name=op.f("fk_intake_submissions_patient_id_patients"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["referral_id"],
            ["referrals.id"],
            name=op.f("fk_intake_submissions_referral_id_referrals"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_intake_submissions")),
    )
    with op.batch_alter_table("intake_submissions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_intake_submissions_patient_id"), ["patient_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_intake_submissions_referral_id"), ["referral_id"], unique=False)

    op.create_table(
        "payments",
        sa.Column("referral_id", sa.String(length=40), nullable=False),
        sa.Column("partner_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("amount_cents", sa.Integer(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("paid_at", server.db.types.UTCDateTime(), nullable=True),
        sa.Column("refunded_at", server.db.types.UTCDateTime(), nullable=True),
        sa.Column("card_last4", sa.String(length=4), nullable=True),
        sa.ForeignKeyConstraint(
            ["referral_id"],
            ["referrals.id"],
            name=op.f("fk_payments_referral_id_referrals"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("referral_id", name=op.f("pk_payments")),
    )
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.create_index("ix_payments_partner_paid", ["partner_id", "paid_at"], unique=False)

    op.create_table(
        "referral_status_history",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("referral_id", sa.String(length=40), nullable=False),
        sa.Column("partner_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("at", server.db.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["referral_id"],
            ["referrals.id"],
            name=op.f("fk_referral_status_history_referral_id_referrals"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_referral_status_history")),
    )
    with op.batch_alter_table("referral_status_history", schema=None) as batch_op:
        batch_op.create_index("ix_history_partner_at", ["partner_id", "at"], unique=False)
        batch_op.create_index("ix_history_referral", ["referral_id", "id"], unique=False)

    op.create_table(
        "tracking_tokens",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("referral_id", sa.String(length=40), nullable=False),
        sa.Column("partner_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", server.db.types.UTCDateTime(), nullable=False),
        sa.Column("expires_at", server.db.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["referral_id"],
            ["referrals.id"],
            name=op.f("fk_tracking_tokens_referral_id_referrals"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_tracking_tokens")),
    )
    with op.batch_alter_table("tracking_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tracking_tokens_referral_id"), ["referral_id"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("tracking_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tracking_tokens_referral_id"))

    op.drop_table("tracking_tokens")
    with op.batch_alter_table("referral_status_history", schema=None) as batch_op:
        batch_op.drop_index("ix_history_referral")
        batch_op.drop_index("ix_history_partner_at")

    op.drop_table("referral_status_history")
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.drop_index("ix_payments_partner_paid")

    op.drop_table("payments")
    with op.batch_alter_table("intake_submissions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_intake_submissions_referral_id"))
        batch_op.drop_index(batch_op.f("ix_intake_submissions_patient_id"))

    op.drop_table("intake_submissions")
    op.drop_table("fulfillments")
    with op.batch_alter_table("event_attempts", schema=None) as batch_op:
        batch_op.drop_index("ix_event_attempts_event")

    op.drop_table("event_attempts")
    with op.batch_alter_table("referrals", schema=None) as batch_op:
        batch_op.drop_index("ix_referrals_partner_status_expires")
        batch_op.drop_index("ix_referrals_partner_status_created")
        batch_op.drop_index("ix_referrals_partner_created")
        batch_op.drop_index("ix_referrals_partner_category_created")

    op.drop_table("referrals")
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_products_partner_id"))

    op.drop_table("products")
    with op.batch_alter_table("patients", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_patients_referral_id"))
        batch_op.drop_index("ix_patients_partner_created")

    op.drop_table("patients")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_events_referral_id"))
        batch_op.drop_index("ix_events_partner_created")
        batch_op.drop_index("ix_events_delivery_due")

    op.drop_table("events")
    op.drop_table("api_keys")
    op.drop_table("partners")
