from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class CreditsOut(BaseModel):
    balance: int  # paid credits (bought or granted); they never expire
    free_remaining: int  # the day's free allowance left; spendable = balance + free_remaining
    free_resets_at: datetime


class LedgerEntryOut(BaseModel):
    id: str
    amount: int  # + credit, - debit
    bucket: str  # "free" (the daily allowance) or "paid"
    reason: str
    reference: str | None
    note: str | None
    created_at: datetime


class LedgerPage(BaseModel):
    items: list[LedgerEntryOut]
    next_cursor: str | None


class ActivityOut(BaseModel):
    """One line of GET /api/v1/credits/activity."""

    id: str  # the job's reference, or the ledger entry's id
    kind: str  # "job" (a generation's or fine-tune's hold, release and spend together) or "entry"
    reason: str  # "job", or the entry's reason (purchase, plan_credits, payment_refunded, ...)
    reference: str | None  # "generation:<id>", "finetune:<id>", "stripe:...", ...
    note: str | None
    amount: int  # the net change to the balance
    free: int  # of which from the daily allowance (the rest is paid credits)
    held: int | None  # jobs: credits set aside when it was submitted
    spent: int | None  # jobs: credits charged for what was made (0 until it is settled)
    settled: bool | None  # jobs: False while it is queued or running
    created_at: datetime


class ActivityPage(BaseModel):
    items: list[ActivityOut]
    next_cursor: str | None
