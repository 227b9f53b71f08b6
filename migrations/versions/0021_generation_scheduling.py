"""generations: queue priority, fair-share start tag, measured seconds per picture-step

Revision ID: 0021_generation_scheduling
Revises: 0020_finetune_checkpoint_scores
Create Date: 2026-12-02 07:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021_generation_scheduling"
down_revision: str | None = "0020_finetune_checkpoint_scores"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("generations") as batch:
        batch.add_column(sa.Column("priority", sa.Integer(), server_default="0", nullable=False))
        batch.add_column(sa.Column("fair_start", sa.Float(), server_default="0", nullable=False))
        batch.add_column(sa.Column("image_step_s", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("generations") as batch:
        batch.drop_column("image_step_s")
        batch.drop_column("fair_start")
        batch.drop_column("priority")
