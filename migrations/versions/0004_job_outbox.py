"""one job layer: attempts for generations; the outbox and settlement marks for both kinds

Revision ID: 0004_job_outbox
Revises: 0003_billing_plans
Create Date: 2026-11-30 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_job_outbox"
down_revision: str | None = "0003_billing_plans"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FINAL = "('succeeded', 'failed', 'canceled')"


def upgrade() -> None:
    with op.batch_alter_table("generations") as batch:
        batch.add_column(sa.Column("attempts", sa.Integer(), server_default="0", nullable=False))
    for table in ("generations", "finetunes"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("dispatched_at", sa.DateTime(timezone=True), nullable=True))
            batch.add_column(sa.Column("dispatches", sa.Integer(), server_default="0", nullable=False))
            batch.add_column(sa.Column("settled_at", sa.DateTime(timezone=True), nullable=True))
            batch.create_index(f"ix_{table}_settled_at", ["settled_at"], unique=False)
        # Jobs from before the outbox were sent when they were made, and the ones that ended
        # were settled then.
        op.execute(f"UPDATE {table} SET dispatched_at = created_at, dispatches = 1")
        op.execute(f"UPDATE {table} SET settled_at = COALESCE(finished_at, created_at) WHERE status IN {FINAL}")
    op.create_index("ix_finetunes_status_created", "finetunes", ["status", "created_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_finetunes_status_created", table_name="finetunes")
    for table in ("finetunes", "generations"):
        with op.batch_alter_table(table) as batch:
            batch.drop_index(f"ix_{table}_settled_at")
            batch.drop_column("settled_at")
            batch.drop_column("dispatches")
            batch.drop_column("dispatched_at")
    with op.batch_alter_table("generations") as batch:
        batch.drop_column("attempts")
