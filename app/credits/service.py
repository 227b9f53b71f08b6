"""Credit balances from the ledger.

For now: the balance is the sum of the user's ledger entries and the free allowance is the
full daily amount, resetting at the next UTC midnight. The credits issue adds spending,
the allowance bookkeeping and the Redis gate on top of these functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from sqlalchemy.orm import Session

from app.auth.models import User
from app.config import get_settings
from app.credits import repository
from app.credits.models import CreditBucket, CreditLedgerEntry, LedgerReason
from app.model_base import new_id, utcnow


@dataclass(frozen=True)
class CreditSummary:
    balance: int
    free_remaining: int
    free_resets_at: datetime


def next_utc_midnight(now: datetime) -> datetime:
    return datetime.combine(now.astimezone(UTC).date() + timedelta(days=1), time(0), tzinfo=UTC)


def summary(session: Session, user: User, now: datetime | None = None) -> CreditSummary:
    now = now or utcnow()
    return CreditSummary(
        balance=repository.balance_of(session, user.id),
        free_remaining=get_settings().free_daily_credits,
        free_resets_at=next_utc_midnight(now),
    )


def admin_grant(session: Session, user: User, amount: int, note: str | None = None) -> CreditLedgerEntry:
    """An operator's grant (or, with a negative amount, a correction) of paid credits."""
    if amount == 0:
        raise ValueError("amount must not be zero")
    entry = CreditLedgerEntry(
        user_id=user.id,
        amount=amount,
        bucket=CreditBucket.PAID,
        reason=LedgerReason.ADMIN,
        reference=f"admin:{new_id()}",
        note=note,
    )
    repository.append(session, entry)
    return entry
