"""prescriber appointments; pharmacy orders found by their source

Revision ID: 0005_prescriber
Revises: 0004_pharmacy
Create Date: 2026-11-23 14:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import server.db.types

revision = "0005_prescriber"
down_revision = "0004_pharmacy"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "prescriber_appointments",
        sa.Column("id", sa.String(length=48), nullable=False),
        sa.Column("partner_id", sa.String(length=64), nullable=False),
        sa.Column("patient_id", sa.String(length=40), nullable=False),
        sa.Column("partner_reference", sa.String(length=128), nullable=False),
        sa.Column("request_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("condition", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("scenario", sa.String(length=64), nullable=False),
        sa.Column("pharmacy_preference", sa.String(length=16), nullable=False),
        sa.Column("preferred_pharmacy_id", sa.String(length=48), nullable=True),
        sa.Column("patient_email", sa.String(length=254), nullable=False),
        sa.Column("patient", sa.JSON(), nullable=False),
        sa.Column("intake_schema_version", sa.String(length=16), nullable=False),
        sa.Column("intake_answers", sa.JSON(), nullable=False),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("review_fee", sa.JSON(), nullable=False),
        sa.Column("prescription", sa.JSON(), nullable=True),
        sa.Column("denial", sa.JSON(), nullable=True),
        sa.Column("routing", sa.JSON(), nullable=True),
        sa.Column("medication_order_id", sa.String(length=36), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", server.db.types.UTCDateTime(), nullable=False),
        sa.Column("updated_at", server.db.types.UTCDateTime(), nullable=False),
        sa.Column("reviewed_at", server.db.types.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["partner_id"],
            ["partners.id"],
            name=op.f("fk_prescriber_appointments_partner_id_partners"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patients.id"],
            name=op.f("fk_prescriber_appointments_patient_id_patients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prescriber_appointments")),
        sa.UniqueConstraint("partner_id", "partner_reference", name="uq_prescriber_appointments_reference"),
    )
    op.create_index(
        "ix_prescriber_appointments_partner_created",
        "prescriber_appointments",
        ["partner_id", "created_at", "id"],
    )
    op.create_index(
        "ix_prescriber_appointments_partner_status", "prescriber_appointments", ["partner_id", "status"]
    )
    op.create_index(op.f("ix_prescriber_appointments_patient_id"), "prescriber_appointments", ["patient_id"])
    # partner flows find the pharmacy order they created by (source, source_ref)
    op.create_index(
        "ix_pharmacy_medication_requests_source", "pharmacy_medication_requests", ["source", "source_ref"]
    )
    # metadata sent with POST /partner/prescriptions, echoed in prescription.* events (C-022)
    op.add_column("partner_prescriptions", sa.Column("metadata", sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column("partner_prescriptions", "metadata")
    op.drop_index("ix_pharmacy_medication_requests_source", table_name="pharmacy_medication_requests")
    op.drop_index(op.f("ix_prescriber_appointments_patient_id"), table_name="prescriber_appointments")
    op.drop_index("ix_prescriber_appointments_partner_status", table_name="prescriber_appointments")
    op.drop_index("ix_prescriber_appointments_partner_created", table_name="prescriber_appointments")
    op.drop_table("prescriber_appointments")
