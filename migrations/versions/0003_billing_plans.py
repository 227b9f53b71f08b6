"""billing: Stripe customers and plans per user, pack payments for refunds; tier is derived

Revision ID: 0003_billing_plans
Revises: 0002_finetune_run_state
Create Date: 2026-11-30 02:50:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_billing_plans"
down_revision: str | None = "0002_finetune_run_state"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "billing_accounts",
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("stripe_customer_id", sa.String(length=255), nullable=True),
        sa.Column("subscription_id", sa.String(length=255), nullable=True),
        sa.Column("plan_id", sa.String(length=64), nullable=True),
        sa.Column("plan_status", sa.String(length=32), nullable=True),
        sa.Column("current_period_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancel_at_period_end", sa.Boolean(), nullable=False),
        sa.Column("grace_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("state_event_created", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_billing_accounts_user_id_users"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_billing_accounts")),
        sa.UniqueConstraint("stripe_customer_id", name=op.f("uq_billing_accounts_stripe_customer_id")),
        sa.UniqueConstraint("subscription_id", name=op.f("uq_billing_accounts_subscription_id")),
    )
    op.create_table(
        "pack_payments",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("checkout_session_id", sa.String(length=255), nullable=False),
        sa.Column("payment_intent_id", sa.String(length=255), nullable=True),
        sa.Column("pack_id", sa.String(length=64), nullable=False),
        sa.Column("credits", sa.Integer(), nullable=False),
        sa.Column("amount_cents", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=8), nullable=False),
        sa.Column("refunded_cents", sa.Integer(), nullable=False),
        sa.Column("disputed_cents", sa.Integer(), nullable=False),
        sa.Column("credits_reversed", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_pack_payments_user_id_users"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pack_payments")),
        sa.UniqueConstraint("checkout_session_id", name=op.f("uq_pack_payments_checkout_session_id")),
        sa.UniqueConstraint("payment_intent_id", name=op.f("uq_pack_payments_payment_intent_id")),
    )
    op.create_index(op.f("ix_pack_payments_user_id"), "pack_payments", ["user_id"], unique=False)
    # The tier follows the plan and the paid balance (app/billing/entitlements.py); a stored
    # copy could only disagree with them. In place, never by copying the table: on SQLite,
    # dropping the old `users` would cascade-delete every row that refers to it.
    with op.batch_alter_table("users", recreate="never") as batch:
        batch.drop_column("tier")


def downgrade() -> None:
    with op.batch_alter_table("users", recreate="never") as batch:
        batch.add_column(sa.Column("tier", sa.String(length=32), server_default="free", nullable=False))
    op.drop_index(op.f("ix_pack_payments_user_id"), table_name="pack_payments")
    op.drop_table("pack_payments")
    op.drop_table("billing_accounts")
