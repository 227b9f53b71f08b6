"""Ledger queries."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.credits.models import CreditLedgerEntry


def balance_of(session: Session, user_id: str) -> int:
    query = select(func.coalesce(func.sum(CreditLedgerEntry.amount), 0)).where(
        CreditLedgerEntry.user_id == user_id
    )
    return int(session.scalar(query) or 0)


def append(session: Session, entry: CreditLedgerEntry) -> None:
    session.add(entry)
    session.flush()
