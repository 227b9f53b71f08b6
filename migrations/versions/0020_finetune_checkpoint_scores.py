"""finetunes: each checkpoint's scores and the step chosen to export (best step)

Revision ID: 0020_finetune_checkpoint_scores
Revises: 0019_webhooks_prompt_lists
Create Date: 2026-12-02 07:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0020_finetune_checkpoint_scores"
down_revision: str | None = "0019_webhooks_prompt_lists"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("finetunes", sa.Column("checkpoint_scores", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"),
                                         nullable=True))


def downgrade() -> None:
    op.drop_column("finetunes", "checkpoint_scores")
