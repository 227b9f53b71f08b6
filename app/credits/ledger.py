"""Ledger bookkeeping shared by both gates: the daily allowance, holds and settlements.

A job's credits move in two steps, both written to the ledger:
- reserve: RESERVATION entries set the credits aside (free allowance first, then paid);
- settle:  RELEASE entries give the whole hold back and SPEND entries charge what was used,
           so the net effect is exactly `-used` and the entries say what happened.

The free bucket resets every UTC day: the day's first DAILY_ALLOWANCE entry brings it back to
the allowance (it adds `allowance - current free total`, so unused free credits do not
accumulate). A hold made on an earlier day keeps its free part when settled - that part of
the allowance has expired at midnight and must not come back on top of today's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

from sqlalchemy.orm import Session

from app.credits import repository
from app.credits.models import CreditBucket, LedgerReason


def day_of(moment: datetime) -> date:
    return moment.astimezone(UTC).date()


def allowance_reference(day: date) -> str:
    return f"day:{day.isoformat()}"


@dataclass(frozen=True)
class Available:
    free: int
    paid: int

    @property
    def total(self) -> int:
        return self.free + self.paid


@dataclass(frozen=True)
class Reservation:
    user_id: str
    reference: str
    amount: int
    free: int  # taken from the day's allowance
    paid: int  # taken from purchased credits


@dataclass(frozen=True)
class Settlement:
    user_id: str
    reference: str
    used: int
    refund_free: int
    refund_paid: int


def available(session: Session, user_id: str, day: date, allowance: int) -> Available:
    """What the user can spend on `day`, from the ledger (read only: writes nothing)."""
    totals = repository.bucket_totals(session, user_id)
    granted = repository.has_entry(session, user_id, LedgerReason.DAILY_ALLOWANCE, allowance_reference(day))
    # Before the day's allowance entry exists, the reset it will make is already due.
    free = totals.free if granted else allowance
    return Available(free=max(free, 0), paid=totals.paid)


def ensure_allowance(session: Session, user_id: str, now: datetime, allowance: int) -> None:
    """Write the day's allowance entry once (idempotent; a concurrent duplicate is ignored)."""
    reference = allowance_reference(day_of(now))
    if repository.has_entry(session, user_id, LedgerReason.DAILY_ALLOWANCE, reference):
        return
    free_total = repository.bucket_totals(session, user_id).free
    repository.append_once(
        session,
        user_id=user_id,
        amount=allowance - free_total,
        bucket=CreditBucket.FREE,
        reason=LedgerReason.DAILY_ALLOWANCE,
        reference=reference,
        note=f"daily allowance: {allowance}",
        created_at=now,
    )


def split(available_now: Available, amount: int) -> tuple[int, int]:
    """Spending uses the allowance first."""
    free = min(available_now.free, amount)
    return free, amount - free


def write_hold(
    session: Session, user_id: str, reference: str, free: int, paid: int, now: datetime, share_lock: bool = False
) -> bool:
    """Write the hold; False (and nothing written) if the reference has one already.
    `share_lock`: the first insert also takes repository.share_lock_account on the user."""
    written = False
    for bucket, part in ((CreditBucket.FREE, free), (CreditBucket.PAID, paid)):
        if part:
            inserted = repository.append_once(
                session, share_lock=share_lock and not written, user_id=user_id, amount=-part, bucket=bucket,
                reason=LedgerReason.RESERVATION, reference=reference, created_at=now,
            )
            if not inserted and not written:
                return False
            written = True
    return written


def rewrite_hold(session: Session, user_id: str, reference: str, free: int, paid: int, now: datetime) -> None:
    """Replace the hold this very transaction wrote (a counter rebuild changed its split
    between free and paid). The rows were never committed, so no one has seen them: the
    ledger stays append-only as far as anyone can tell."""
    repository.discard_uncommitted_hold(session, user_id, reference)
    write_hold(session, user_id, reference, free, paid, now)


def existing_reservation(session: Session, user_id: str, reference: str) -> Reservation | None:
    hold = repository.hold_of(session, user_id, reference)
    if hold is None:
        return None
    return Reservation(user_id, reference, hold.total, hold.free, hold.paid)


def write_settlement(session: Session, user_id: str, reference: str, used: int, now: datetime) -> Settlement | None:
    """Turn a hold into a spend of `used` and release the rest; None if nothing to do
    (no hold, or settled already - settling twice changes nothing)."""
    # 1. find the hold
    hold = repository.hold_of(session, user_id, reference)
    if hold is None:
        return None
    # 2. decide the charge: allowance first; an earlier day's free part has expired
    used = max(0, min(used, hold.total))
    charge_free = min(used, hold.free)
    charge_paid = used - charge_free
    if hold.day != day_of(now):
        charge_free = hold.free
    # 3. release the hold; the first release is the marker that makes settling idempotent
    releases = [(CreditBucket.FREE, hold.free), (CreditBucket.PAID, hold.paid)]
    first = True
    for bucket, part in releases:
        if not part:
            continue
        inserted = repository.append_once(
            session, user_id=user_id, amount=part, bucket=bucket,
            reason=LedgerReason.RELEASE, reference=reference, created_at=now,
        )
        if first and not inserted:
            return None
        first = False
    # 4. charge what was used
    for bucket, part in ((CreditBucket.FREE, charge_free), (CreditBucket.PAID, charge_paid)):
        if part:
            repository.append_once(
                session, user_id=user_id, amount=-part, bucket=bucket,
                reason=LedgerReason.SPEND, reference=reference, created_at=now,
            )
    return Settlement(user_id, reference, used, hold.free - charge_free, hold.paid - charge_paid)
