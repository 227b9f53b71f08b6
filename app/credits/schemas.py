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
