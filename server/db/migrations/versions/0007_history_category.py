"""history rows carry their referral's product_category; covering index for the summary (issue 10)

The summary counts referrals that entered each status in a window, per category. It joined every
history row of the window to its referral for the category (index probes, 144 ms for a month at
1 million referrals). The category never changes after create, so it is copied into each history row
(backfilled here, written with every new row) and the window's rows are read from one index:
(partner_id, at) INCLUDE (status, product_category, referral_id) on PostgreSQL, an index-only scan.
The join's covering index from 0006 (ix_referrals_id_category) has no other reader and is dropped.

Revision ID: 0007_history_category
Revises: 0006_bench_indexes
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_history_category"
down_revision = "0006_bench_indexes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "referral_status_history", sa.Column("product_category", sa.String(length=64), nullable=True)
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "UPDATE referral_status_history AS h SET product_category = r.product_category "
            "FROM referrals AS r WHERE r.id = h.referral_id"
        )
    else:
        op.execute(
            "UPDATE referral_status_history SET product_category = (SELECT r.product_category "
            "FROM referrals AS r WHERE r.id = referral_status_history.referral_id)"
        )
    with op.batch_alter_table("referral_status_history", schema=None) as batch_op:
        batch_op.alter_column("product_category", existing_type=sa.String(length=64), nullable=False)
        batch_op.drop_index("ix_history_partner_at")
        batch_op.create_index(
            "ix_history_partner_at_cover",
            ["partner_id", "at"],
            unique=False,
            postgresql_include=["status", "product_category", "referral_id"],
        )
    op.drop_index("ix_referrals_id_category", table_name="referrals")


def downgrade() -> None:
    op.create_index("ix_referrals_id_category", "referrals", ["id", "product_category"])
    with op.batch_alter_table("referral_status_history", schema=None) as batch_op:
        batch_op.drop_index("ix_history_partner_at_cover")
        batch_op.create_index("ix_history_partner_at", ["partner_id", "at"], unique=False)
        batch_op.drop_column("product_category")
