"""Billing state: Stripe events already processed, each user's Stripe customer and plan, and
the pack payments that a later refund or dispute maps back to."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.model_base import ID_LENGTH, Base, created_at_column, id_column, owner_column, utcnow


class StripeEvent(Base):
    """The unique event id makes fulfilment idempotent."""

    __tablename__ = "stripe_events"

    id: Mapped[str] = id_column()
    event_id: Mapped[str] = mapped_column(String(255), unique=True, nullable=False)
    type: Mapped[str] = mapped_column(String(100), nullable=False)
    processed_at: Mapped[datetime] = mapped_column(default=utcnow, nullable=False)


class BillingAccount(Base):
    """One row per user who has touched billing: the Stripe customer (created once) and the
    subscription plan as the signed events last described it."""

    __tablename__ = "billing_accounts"

    user_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    stripe_customer_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    subscription_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    plan_id: Mapped[str | None] = mapped_column(String(64))
    # Stripe's subscription status (active, trialing, past_due, incomplete, unpaid, paused,
    # canceled, incomplete_expired); None before any subscription.
    plan_status: Mapped[str | None] = mapped_column(String(32))
    current_period_end: Mapped[datetime | None]
    cancel_at_period_end: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    # Set when a renewal payment fails: the plan keeps its benefits until then.
    grace_until: Mapped[datetime | None]
    # `created` of the newest subscription event applied: an older one arriving late is ignored.
    state_event_created: Mapped[int] = mapped_column(BigInteger, default=0, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow, nullable=False)


class PackPayment(Base):
    """A paid pack checkout and what refunds and disputes have taken back of it."""

    __tablename__ = "pack_payments"

    id: Mapped[str] = id_column()
    user_id: Mapped[str] = owner_column()
    checkout_session_id: Mapped[str] = mapped_column(String(255), unique=True, nullable=False)
    payment_intent_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    pack_id: Mapped[str] = mapped_column(String(64), nullable=False)
    credits: Mapped[int] = mapped_column(Integer, nullable=False)
    amount_cents: Mapped[int] = mapped_column(Integer, nullable=False)
    currency: Mapped[str] = mapped_column(String(8), nullable=False)
    refunded_cents: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    disputed_cents: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    # Credits the reversals were due (what was taken back, plus what the debt rule forgave).
    credits_reversed: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    created_at: Mapped[datetime] = created_at_column()
