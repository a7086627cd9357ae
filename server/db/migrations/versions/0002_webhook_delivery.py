"""webhook delivery (sandbox part 2): serialized body, claims, attempt outcomes, simulation progress

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import server.db.types

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("events") as batch_op:
        batch_op.add_column(sa.Column("body", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("first_attempt_at", server.db.types.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("auto_attempt_count", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(
            sa.Column("redelivery_requested_at", server.db.types.UTCDateTime(), nullable=True)
        )
        batch_op.add_column(sa.Column("claimed_by", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("has_failed", sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table("event_attempts") as batch_op:
        batch_op.add_column(sa.Column("url", sa.String(length=2048), nullable=True))
        batch_op.add_column(sa.Column("outcome", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("redelivery", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_table(
        "sandbox_referral_progress",
        sa.Column("referral_id", sa.String(length=40), nullable=False),
        sa.Column("partner_id", sa.String(length=64), nullable=False),
        sa.Column("last_step_at", server.db.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["referral_id"],
            ["referrals.id"],
            name=op.f("fk_sandbox_referral_progress_referral_id_referrals"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("referral_id", name=op.f("pk_sandbox_referral_progress")),
    )
    op.create_index(
        op.f("ix_sandbox_referral_progress_partner_id"),
        "sandbox_referral_progress",
        ["partner_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_sandbox_referral_progress_partner_id"), table_name="sandbox_referral_progress")
    op.drop_table("sandbox_referral_progress")
    with op.batch_alter_table("event_attempts") as batch_op:
        batch_op.drop_column("redelivery")
        batch_op.drop_column("outcome")
        batch_op.drop_column("url")
    with op.batch_alter_table("events") as batch_op:
        batch_op.drop_column("has_failed")
        batch_op.drop_column("claimed_by")
        batch_op.drop_column("redelivery_requested_at")
        batch_op.drop_column("auto_attempt_count")
        batch_op.drop_column("first_attempt_at")
        batch_op.drop_column("body")
