"""fine-tune run state: expected finish time, attempts, resumed-from step

Revision ID: 0002_finetune_run_state
Revises: 0001
Create Date: 2026-11-29 02:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_finetune_run_state"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("finetunes") as batch:
        batch.add_column(sa.Column("expected_finish_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("attempts", sa.Integer(), server_default="0", nullable=False))
        batch.add_column(sa.Column("resumed_from_step", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("finetunes") as batch:
        batch.drop_column("resumed_from_step")
        batch.drop_column("attempts")
        batch.drop_column("expected_finish_at")
