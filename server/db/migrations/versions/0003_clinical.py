"""clinical tier: appointments, transactions, addresses, PHI audit trail

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import server.db.types

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_logs",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("at", server.db.types.UTCDateTime(), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("entity_type", sa.String(length=32), nullable=False),
        sa.Column("entity_id", sa.String(length=64), nullable=False),
        sa.Column("parent_entity_id", sa.String(length=64), nullable=True),
        sa.Column("patient_id", sa.String(length=40), nullable=True),
        sa.Column("partner_id", sa.String(length=64), nullable=True),
        sa.Column("actor_uid", sa.String(length=64), nullable=False),
        sa.Column("actor_email", sa.String(length=254), nullable=True),
        sa.Column("actor_role", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("source_name", sa.String(length=128), nullable=False),
        sa.Column("summary", sa.String(length=500), nullable=False),
        sa.Column("diff", sa.JSON(), nullable=True),
        sa.Column("phi_redacted", sa.Boolean(), nullable=False),
        sa.Column("correlation_id", sa.String(length=128), nullable=True),
        sa.Column("ip_address", sa.String(length=64), nullable=True),
        sa.Column("user_agent", sa.Text(), nullable=True),
        sa.Column("schema_version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_logs")),
    )
    with op.batch_alter_table("audit_logs", schema=None) as batch_op:
        batch_op.create_index("ix_audit_logs_partner_at", ["partner_id", "at"], unique=False)
        batch_op.create_index("ix_audit_logs_patient_at", ["patient_id", "at"], unique=False)

    op.create_table(
        "clinical_appointments",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("partner_id", sa.String(length=64), nullable=False),
        sa.Column("patient_id", sa.String(length=40), nullable=False),
        sa.Column("referral_id", sa.String(length=40), nullable=False),
        sa.Column("intake_submission_id", sa.Integer(), nullable=True),
        sa.Column("prescription_id", sa.String(length=64), nullable=True),
        sa.Column("product_category", sa.String(length=64), nullable=False),
        sa.Column("condition", sa.String(length=200), nullable=False),
        sa.Column("form_title", sa.String(length=200), nullable=False),
        sa.Column("submitted_at", server.db.types.UTCDateTime(), nullable=False),
        sa.Column("created_at", server.db.types.UTCDateTime(), nullable=False),
        sa.Column("updated_at", server.db.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["partner_id"],
            ["partners.id"],
            name=op.f("fk_clinical_appointments_partner_id_partners"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patients.id"],
            name=op.f("fk_clinical_appointments_patient_id_patients"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["referral_id"],
            ["referrals.id"],
            name=op.f("fk_clinical_appointments_referral_id_referrals"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clinical_appointments")),
    )
    with op.batch_alter_table("clinical_appointments", schema=None) as batch_op:
        batch_op.create_index(
            "ix_clinical_appointments_partner", ["partner_id", "created_at", "id"], unique=False
        )
        batch_op.create_index(
            "ix_clinical_appointments_patient", ["patient_id", "created_at", "id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_clinical_appointments_referral_id"), ["referral_id"], unique=False
        )

    op.create_table(
        "clinical_transactions",
        sa.Column("id", sa.String(length=48), nullable=False),
        sa.Column("partner_id", sa.String(length=64), nullable=False),
        sa.Column("patient_id", sa.String(length=40), nullable=False),
        sa.Column("appointment_id", sa.String(length=64), nullable=True),
        sa.Column("referral_id", sa.String(length=40), nullable=True),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("amount_cents", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=False),
        sa.Column("line_items", sa.JSON(), nullable=False),
        sa.Column("card_brand", sa.String(length=40), nullable=True),
        sa.Column("card_last4", sa.String(length=4), nullable=True),
        sa.Column("payment_intent_id", sa.String(length=80), nullable=True),
        sa.Column("refund_amount_cents", sa.Integer(), nullable=True),
        sa.Column("refund_reason", sa.String(length=500), nullable=True),
        sa.Column("refunded_at", server.db.types.UTCDateTime(), nullable=True),
        sa.Column("created_at", server.db.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["partner_id"],
            ["partners.id"],
            name=op.f("fk_clinical_transactions_partner_id_partners"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patients.id"],
            name=op.f("fk_clinical_transactions_patient_id_patients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clinical_transactions")),
    )
    with op.batch_alter_table("clinical_transactions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_clinical_transactions_partner_id"), ["partner_id"], unique=False)
        batch_op.create_index(
            "ix_clinical_transactions_patient", ["patient_id", "created_at", "id"], unique=False
        )

    op.create_table(
        "patient_addresses",
        sa.Column("patient_id", sa.String(length=40), nullable=False),
        sa.Column("line1", sa.String(length=200), nullable=False),
        sa.Column("line2", sa.String(length=200), nullable=True),
        sa.Column("city", sa.String(length=100), nullable=False),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("postal_code", sa.String(length=16), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patients.id"],
            name=op.f("fk_patient_addresses_patient_id_patients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("patient_id", name=op.f("pk_patient_addresses")),
    )
    op.create_table(
        "prescribers",
        sa.Column("id", sa.String(length=48), nullable=False),
        sa.Column("partner_id", sa.String(length=64), nullable=False),
        sa.Column("partner_reference", sa.String(length=128), nullable=True),
        sa.Column("request_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("first_name", sa.String(length=100), nullable=False),
        sa.Column("last_name", sa.String(length=100), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("npi", sa.String(length=10), nullable=True),
        sa.Column("dea_number", sa.String(length=9), nullable=True),
        sa.Column("licenses", sa.JSON(), nullable=False),
        sa.Column("created_at", server.db.types.UTCDateTime(), nullable=False),
        sa.Column("updated_at", server.db.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["partner_id"],
            ["partners.id"],
            name=op.f("fk_prescribers_partner_id_partners"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prescribers")),
        sa.UniqueConstraint("partner_id", "partner_reference", name="uq_prescribers_partner_reference"),
    )
    with op.batch_alter_table("prescribers", schema=None) as batch_op:
        batch_op.create_index(
            "ix_prescribers_partner_created", ["partner_id", "created_at", "id"], unique=False
        )

    op.create_table(
        "partner_prescriptions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("partner_id", sa.String(length=64), nullable=False),
        sa.Column("partner_reference", sa.String(length=128), nullable=True),
        sa.Column("request_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("appointment_id", sa.String(length=64), nullable=False),
        sa.Column("rx_id", sa.String(length=32), nullable=False),
        sa.Column("referral_id", sa.String(length=40), nullable=False),
        sa.Column("patient_id", sa.String(length=40), nullable=False),
        sa.Column("prescriber_id", sa.String(length=48), nullable=False),
        sa.Column("medications", sa.JSON(), nullable=False),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("fulfillment_status", sa.String(length=16), nullable=False),
        sa.Column("created_at", server.db.types.UTCDateTime(), nullable=False),
        sa.Column("updated_at", server.db.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["partner_id"],
            ["partners.id"],
            name=op.f("fk_partner_prescriptions_partner_id_partners"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_partner_prescriptions")),
        sa.UniqueConstraint(
            "partner_id", "partner_reference", name="uq_partner_prescriptions_partner_reference"
        ),
    )
    with op.batch_alter_table("partner_prescriptions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_partner_prescriptions_partner_id"), ["partner_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_partner_prescriptions_patient_id"), ["patient_id"], unique=False)

    if op.get_bind().dialect.name == "postgresql":
        # The PHI audit trail is append-only in the database itself, not only in the code.
        op.execute(
            """
            CREATE FUNCTION audit_logs_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
              RAISE EXCEPTION 'audit_logs is append-only: % is not allowed', TG_OP;
            END;
            $$
            """
        )
        op.execute(
            "CREATE TRIGGER audit_logs_append_only BEFORE UPDATE OR DELETE ON audit_logs "
            "FOR EACH ROW EXECUTE FUNCTION audit_logs_append_only()"
        )
        op.execute(
            "CREATE TRIGGER audit_logs_no_truncate BEFORE TRUNCATE ON audit_logs "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_logs_append_only()"
        )


def downgrade() -> None:
    op.drop_table("partner_prescriptions")
    op.drop_table("prescribers")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_logs_no_truncate ON audit_logs")
        op.execute("DROP TRIGGER IF EXISTS audit_logs_append_only ON audit_logs")
        op.execute("DROP FUNCTION IF EXISTS audit_logs_append_only()")
    op.drop_table("patient_addresses")
    with op.batch_alter_table("clinical_transactions", schema=None) as batch_op:
        batch_op.drop_index("ix_clinical_transactions_patient")
        batch_op.drop_index(batch_op.f("ix_clinical_transactions_partner_id"))

    op.drop_table("clinical_transactions")
    with op.batch_alter_table("clinical_appointments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_clinical_appointments_referral_id"))
        batch_op.drop_index("ix_clinical_appointments_patient")
        batch_op.drop_index("ix_clinical_appointments_partner")

    op.drop_table("clinical_appointments")
    with op.batch_alter_table("audit_logs", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_logs_patient_at")
        batch_op.drop_index("ix_audit_logs_partner_at")

    op.drop_table("audit_logs")
