"""indexes for the referral summary (issue 10, benchmarks): covering join to referrals, refunds window

The summary's status counts join history rows in the window to their referral for product_category;
without a covering index PostgreSQL hash-joined a sequential scan of every referral of every partner
(1.5 s at 1 million rows; 0.18 s with it, by index-only probes). The refunds half of the revenue sum
filtered payments on refunded_at without an index (a sequential scan, 0.35 s at 1 million).

Revision ID: 0006_bench_indexes
Revises: 0005_prescriber
"""

from __future__ import annotations

from alembic import op

revision = "0006_bench_indexes"
down_revision = "0005_prescriber"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_referrals_id_category", "referrals", ["id", "product_category"])
    op.create_index("ix_payments_partner_refunded", "payments", ["partner_id", "refunded_at"])


def downgrade() -> None:
    op.drop_index("ix_payments_partner_refunded", table_name="payments")
    op.drop_index("ix_referrals_id_category", table_name="referrals")
