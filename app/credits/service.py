"""Credits: balances, the gate in front of every cost-bearing job, grants and purchases.

The ledger (app/credits/ledger.py) is the truth; the gate (app/credits/gate.py) decides
atomically whether a job may start. Job services call, in this order:
    check_concurrency(session, user)
    reserve(session, user, cost, f"generation:{job_id}")    # 402 insufficient_credits
and the task, when the job ends:
    settle(session, user_id, f"generation:{job_id}", used)  # the rest comes back
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from sqlalchemy.orm import Session

from app import pagination
from app.auth.models import User
from app.billing import entitlements
from app.config import get_settings
from app.credits import ledger, repository
from app.credits.gate import get_gate
from app.credits.ledger import Reservation, Settlement
from app.credits.models import CreditBucket, CreditLedgerEntry, LedgerReason
from app.errors import AppError
from app.model_base import new_id, utcnow

__all__ = [
    "CreditSummary", "Reservation", "Settlement", "activity_page", "admin_grant", "check_concurrency", "credit_paid",
    "ledger_page", "next_utc_midnight", "reserve", "settle", "summary", "take_back",
]

# The clock every credit decision reads; tests replace it to cross a day boundary.
clock: Callable[[], datetime] = utcnow

CONCURRENCY_RETRY_AFTER_S = 5


@dataclass(frozen=True)
class CreditSummary:
    balance: int  # paid credits (bought or granted; they never expire)
    free_remaining: int  # the day's allowance left
    free_resets_at: datetime

    @property
    def spendable(self) -> int:
        return self.balance + self.free_remaining


def next_utc_midnight(now: datetime) -> datetime:
    return datetime.combine(now.astimezone(UTC).date() + timedelta(days=1), time(0), tzinfo=UTC)


def summary(session: Session, user: User, now: datetime | None = None) -> CreditSummary:
    now = now or clock()
    available = ledger.available(session, user.id, ledger.day_of(now), get_settings().free_daily_credits)
    return CreditSummary(balance=available.paid, free_remaining=available.free, free_resets_at=next_utc_midnight(now))


# --- the gate -----------------------------------------------------------------------
def reserve(session: Session, user: User, amount: int, reference: str, now: datetime | None = None) -> Reservation:
    """Set `amount` credits aside for `reference` or raise 402 insufficient_credits.

    Atomic per user; a repeat with the same reference returns the first reservation."""
    if amount < 0:
        raise ValueError("amount must not be negative")
    return get_gate().reserve(session, user.id, amount, reference, now or clock())


def settle(session: Session, user_id: str, reference: str, used: int, now: datetime | None = None) -> Settlement | None:
    """The job is over: charge `used` credits of its reservation and give the rest back.

    Idempotent: a second settle (a re-delivered task) changes nothing and returns None."""
    return get_gate().settle(session, user_id, reference, used, now or clock())


# --- the job limit -----------------------------------------------------------------
def check_concurrency(session: Session, user: User, excluding: str | None = None) -> entitlements.Entitlements:
    """429 rate_limited when the user already has as many queued or running jobs as the
    account allows (app/billing/entitlements.py; generations and fine-tunes together), else
    the account's entitlements. `excluding`: the id of the job being submitted, when it is
    already written."""
    # Held until the job is committed: the next submission counts it.
    repository.lock_job_count(session, user.id)
    rights = entitlements.of(session, user.id, clock())
    limit = rights.max_active_jobs
    active = repository.active_job_count(session, user.id, excluding)
    if active < limit:
        return rights
    premium = rights.tier == entitlements.Tier.PREMIUM
    tier = "Premium" if premium else "Free"
    hint = "" if premium else f" Buy credits or subscribe to a plan to run up to {get_settings().premium_max_active_jobs} at once."
    raise AppError(
        "rate_limited",
        f"{tier} accounts can have {limit} job(s) queued or running at a time; wait for one to finish.{hint}",
        429,
        headers={"Retry-After": str(CONCURRENCY_RETRY_AFTER_S)},
        active_jobs=active,
        limit=limit,
    )


# --- credits in -----------------------------------------------------------------------
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
    get_gate().credited(session, user.id, 0, amount)
    return entry


def credit_paid(session: Session, user_id: str, credits: int, reason: LedgerReason, reference: str, note: str) -> bool:
    """Paid credits that money bought (a pack's checkout, a plan's invoice), once per
    `reference`: True if credited now, False if that reference was credited before."""
    inserted = repository.append_once(
        session, user_id=user_id, amount=credits, bucket=CreditBucket.PAID,
        reason=reason, reference=reference, note=note, created_at=clock(),
    )
    if inserted:
        get_gate().credited(session, user_id, 0, credits)
    return inserted


def take_back(session: Session, user_id: str, wanted: int, reason: LedgerReason, reference: str, what: str) -> int:
    """Take up to `wanted` paid credits back (`what`: a refunded or disputed payment), leaving
    the paid balance no lower than `-refund_max_debt` (0: only unspent credits are taken;
    credits held by running jobs count as spent). Returns how many were taken (0 as well
    when the reference was taken back before)."""
    repository.lock_account(session, user_id)  # no reservation decides meanwhile
    if repository.has_entry(session, user_id, reason, reference):
        return 0
    paid = repository.bucket_totals(session, user_id).paid
    taken = max(0, min(wanted, paid + get_settings().refund_max_debt))
    if taken:
        spent = f"; {wanted - taken} had been spent" if taken < wanted else ""
        repository.append_once(
            session, user_id=user_id, amount=-taken, bucket=CreditBucket.PAID, reason=reason,
            reference=reference, note=f"{what}: {taken} of {wanted} credits taken back{spent}", created_at=clock(),
        )
        get_gate().credited(session, user_id, 0, -taken)
    return taken


# --- the caller's ledger --------------------------------------------------------------
def ledger_page(
    session: Session, user: User, limit: int, cursor: str | None
) -> tuple[list[CreditLedgerEntry], str | None]:
    after = pagination.decode_cursor(cursor) if cursor else None
    entries = repository.entries_page(session, user.id, limit + 1, after)
    more = len(entries) > limit
    entries = entries[:limit]
    return entries, (pagination.encode_cursor(entries[-1].created_at, entries[-1].id) if more else None)


def activity_page(
    session: Session, user: User, limit: int, cursor: str | None
) -> tuple[list[repository.ActivityRow], str | None]:
    """The ledger as people read it: one line per job (its hold, release and spend
    together), every other entry as it is; newest first."""
    after = pagination.decode_cursor(cursor) if cursor else None
    rows = repository.activity_page(session, user.id, limit + 1, after)
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (pagination.encode_cursor(rows[-1].at, rows[-1].key) if more else None)
