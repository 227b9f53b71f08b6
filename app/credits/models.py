"""The credit ledger: append-only, the truth about every balance."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.model_base import Base, created_at_column, id_column, owner_column, string_enum


class CreditBucket(enum.StrEnum):
    FREE = "free"  # the daily allowance: resets, never accumulates
    PAID = "paid"  # purchased or granted: never expires


class LedgerReason(enum.StrEnum):
    GRANT = "grant"
    PURCHASE = "purchase"
    SPEND = "spend"
    REFUND = "refund"
    DAILY_ALLOWANCE = "daily_allowance"
    ADMIN = "admin"
    RESERVATION = "reservation"
    RELEASE = "release"
    PLAN_CREDITS = "plan_credits"  # a plan's paid invoice
    PAYMENT_REFUNDED = "payment_refunded"  # a pack's credits taken back after a refund
    PAYMENT_DISPUTED = "payment_disputed"  # ... after a dispute (chargeback)


class CreditLedgerEntry(Base):
    __tablename__ = "credit_ledger"
    __table_args__ = (
        # One entry per (user, reason, reference, bucket): a replayed webhook or a
        # re-delivered task cannot credit or charge twice. Entries without a reference
        # are not deduplicated (NULLs are distinct on both backends).
        UniqueConstraint("user_id", "reason", "reference", "bucket"),
        Index("ix_credit_ledger_user_created", "user_id", "created_at"),
    )

    id: Mapped[str] = id_column()
    user_id: Mapped[str] = owner_column(indexed=False)
    amount: Mapped[int] = mapped_column(Integer, nullable=False)  # + credit, - debit
    bucket: Mapped[CreditBucket] = mapped_column(string_enum(CreditBucket), nullable=False)
    reason: Mapped[LedgerReason] = mapped_column(string_enum(LedgerReason), nullable=False)
    # What the entry is about: "generation:<id>", "finetune:<id>", "stripe:<checkout id>",
    # "stripe:invoice:<id>", "stripe:refund:<charge id>:<cents refunded>",
    # "stripe:dispute:<id>", "admin:<id>", "day:<YYYY-MM-DD>".
    reference: Mapped[str | None] = mapped_column(String(255))
    note: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = created_at_column()
