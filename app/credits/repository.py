"""Ledger queries. The ledger is append-only: nothing here updates or deletes a committed
entry (discard_uncommitted_hold removes only rows its own transaction has just written)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import String, bindparam, case, cast, delete, func, literal, null, select, tuple_, union_all, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.auth.models import User
from app.credits.models import CreditBucket, CreditLedgerEntry, LedgerReason
from app.generation.models import Generation
from app.model_base import JobStatus, new_id, utcnow
from app.personalization.models import Finetune

ACTIVE_STATUSES = (JobStatus.QUEUED, JobStatus.RUNNING)


@dataclass(frozen=True)
class BucketTotals:
    free: int
    paid: int


@dataclass(frozen=True)
class Hold:
    """The RESERVATION entries of one reference: what was set aside, and on which day."""

    free: int
    paid: int
    day: date

    @property
    def total(self) -> int:
        return self.free + self.paid


def bucket_totals(session: Session, user_id: str) -> BucketTotals:
    query = (
        select(CreditLedgerEntry.bucket, func.sum(CreditLedgerEntry.amount))
        .where(CreditLedgerEntry.user_id == user_id)
        .group_by(CreditLedgerEntry.bucket)
    )
    sums = {CreditBucket(bucket): int(total or 0) for bucket, total in session.execute(query)}
    return BucketTotals(free=sums.get(CreditBucket.FREE, 0), paid=sums.get(CreditBucket.PAID, 0))


def has_entry(session: Session, user_id: str, reason: LedgerReason, reference: str) -> bool:
    query = select(CreditLedgerEntry.id).where(
        CreditLedgerEntry.user_id == user_id,
        CreditLedgerEntry.reason == reason,
        CreditLedgerEntry.reference == reference,
    )
    return session.scalar(query.limit(1)) is not None


def hold_of(session: Session, user_id: str, reference: str) -> Hold | None:
    query = select(CreditLedgerEntry.bucket, CreditLedgerEntry.amount, CreditLedgerEntry.created_at).where(
        CreditLedgerEntry.user_id == user_id,
        CreditLedgerEntry.reason == LedgerReason.RESERVATION,
        CreditLedgerEntry.reference == reference,
    )
    rows = session.execute(query).all()
    if not rows:
        return None
    parts = {CreditBucket(bucket): -amount for bucket, amount, _ in rows}
    return Hold(free=parts.get(CreditBucket.FREE, 0), paid=parts.get(CreditBucket.PAID, 0), day=rows[0][2].date())


def append(session: Session, entry: CreditLedgerEntry) -> None:
    session.add(entry)
    session.flush()


def append_once(session: Session, share_lock: bool = False, **values: Any) -> bool:
    """Insert an entry unless its (user, reason, reference, bucket) exists; True if inserted.

    ON CONFLICT DO NOTHING: a concurrent duplicate waits for the first to commit and then
    inserts nothing - no exception, so the surrounding transaction stays usable.
    `share_lock`: also take `share_lock_account` on the entry's user, in the same statement
    on Postgres (INSERT ... SELECT ... FOR SHARE), which saves the reservation path a round
    trip.
    """
    postgres = session.get_bind().dialect.name == "postgresql"
    if postgres and share_lock:
        row = {"id": new_id(), "note": None, "created_at": utcnow(), **values}
        return session.execute(_share_locked_insert(), row).first() is not None
    if not postgres and share_lock:
        share_lock_account(session, values["user_id"])
    dialect = postgresql if postgres else sqlite
    statement = dialect.insert(CreditLedgerEntry).values(**values).on_conflict_do_nothing().returning(CreditLedgerEntry.id)
    return session.execute(statement).first() is not None


@functools.cache
def _share_locked_insert():
    """INSERT ... SELECT ... FROM users WHERE id = :user_id FOR SHARE ON CONFLICT DO NOTHING,
    built once: on the reservation path, building the statement per call cost about as much
    as running it."""
    table = CreditLedgerEntry.__table__
    columns = ["id", "user_id", "amount", "bucket", "reason", "reference", "note", "created_at"]
    source = (
        select(*(User.id if name == "user_id" else bindparam(name, type_=table.c[name].type) for name in columns))
        .where(User.id == bindparam("user_id"))
        .with_for_update(read=True)
    )
    insert = postgresql.insert(table).from_select(columns, source, include_defaults=False)
    return insert.on_conflict_do_nothing().returning(table.c.id)


def discard_uncommitted_hold(session: Session, user_id: str, reference: str) -> None:
    """Only for a hold written earlier in the same, still open transaction."""
    session.execute(
        delete(CreditLedgerEntry).where(
            CreditLedgerEntry.user_id == user_id,
            CreditLedgerEntry.reason == LedgerReason.RESERVATION,
            CreditLedgerEntry.reference == reference,
        )
    )


def lock_account(session: Session, user_id: str) -> None:
    """Serialize credit decisions for one user until the transaction ends.

    Postgres: a row lock on the user - FOR NO KEY UPDATE, which does not conflict with the
    key-share locks that inserting the user's jobs and ledger rows takes (foreign keys).
    SQLite has no row locks, but a write takes the database's write lock, so a no-op
    UPDATE does the same job (and waits its turn).
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(User.id).where(User.id == user_id).with_for_update(key_share=True))
    else:
        session.execute(update(User).where(User.id == user_id).values(email=User.email))


def share_lock_account(session: Session, user_id: str) -> None:
    """A shared lock on the user until the transaction ends: many reservations may hold it
    at once; `lock_account` (a counter rebuild) waits until all of them have committed."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(User.id).where(User.id == user_id).with_for_update(read=True))
    else:
        lock_account(session, user_id)


def entries_page(
    session: Session, user_id: str, limit: int, after: tuple[datetime, str] | None
) -> list[CreditLedgerEntry]:
    query = select(CreditLedgerEntry).where(CreditLedgerEntry.user_id == user_id)
    if after is not None:
        created_at, entry_id = after
        query = query.where(tuple_(CreditLedgerEntry.created_at, CreditLedgerEntry.id) < tuple_(created_at, entry_id))
    query = query.order_by(CreditLedgerEntry.created_at.desc(), CreditLedgerEntry.id.desc()).limit(limit)
    return list(session.scalars(query))


JOB_REASONS = (LedgerReason.RESERVATION, LedgerReason.RELEASE, LedgerReason.SPEND)


@dataclass(frozen=True)
class ActivityRow:
    """One line of the caller's activity: a job's hold, release and spend summed under its
    reference (`job` True), or one other ledger entry."""

    key: str  # the job's reference, or the entry's id (with `at`, the page cursor)
    job: bool
    reason: str
    reference: str | None
    note: str | None
    at: datetime  # when the job's hold was made, or the entry's time
    amount: int  # the net change
    free: int  # of which on the free bucket
    held: int  # credits the job set aside
    spent: int  # ... and was charged once settled
    settled: bool


def activity_page(session: Session, user_id: str, limit: int, after: tuple[datetime, str] | None) -> list[ActivityRow]:
    entry = CreditLedgerEntry
    free = func.sum(case((entry.bucket == CreditBucket.FREE, entry.amount), else_=0))
    jobs = select(
        entry.reference.label("key"), literal(True).label("job"), literal("job", String(32)).label("reason"),
        entry.reference.label("reference"), null().label("note"), func.min(entry.created_at).label("at"),
        func.sum(entry.amount).label("amount"), free.label("free"),
        func.sum(case((entry.reason == LedgerReason.RESERVATION, -entry.amount), else_=0)).label("held"),
        func.sum(case((entry.reason == LedgerReason.SPEND, -entry.amount), else_=0)).label("spent"),
        func.max(case((entry.reason == LedgerReason.RELEASE, 1), else_=0)).label("settled"),
    ).where(entry.user_id == user_id, entry.reason.in_(JOB_REASONS)).group_by(entry.reference)
    others = select(
        entry.id, literal(False), cast(entry.reason, String(32)), entry.reference, entry.note, entry.created_at,
        entry.amount, case((entry.bucket == CreditBucket.FREE, entry.amount), else_=0), literal(0), literal(0),
        literal(1),
    ).where(entry.user_id == user_id, entry.reason.not_in(JOB_REASONS))
    lines = union_all(jobs, others).subquery()
    query = select(lines)
    if after is not None:
        query = query.where(tuple_(lines.c.at, lines.c.key) < tuple_(*after))
    query = query.order_by(lines.c.at.desc(), lines.c.key.desc()).limit(limit)
    return [
        ActivityRow(key=row.key, job=bool(row.job), reason=row.reason, reference=row.reference, note=row.note,
                    at=row.at, amount=int(row.amount), free=int(row.free), held=int(row.held),
                    spent=int(row.spent), settled=bool(row.settled))
        for row in session.execute(query)
    ]


def lock_job_count(session: Session, user_id: str) -> None:
    """Serialize job submissions for one user until the transaction ends, so that counting
    the active jobs and adding one is a single step (two submissions at once cannot both
    see room for one more).

    Postgres: a transaction-scoped advisory lock on the user, not a row lock - the credit
    gate's counter rebuild takes the user's row lock in another transaction, and must not
    wait for this one. SQLite: the database's write lock (`lock_account`).
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(func.hashtextextended("jobs:" + user_id, 0))))
    else:
        lock_account(session, user_id)


def active_job_count(session: Session, user_id: str, excluding: str | None = None) -> int:
    generations = select(func.count()).select_from(Generation).where(
        Generation.user_id == user_id, Generation.status.in_(ACTIVE_STATUSES), Generation.id != (excluding or "")
    )
    finetunes = select(func.count()).select_from(Finetune).where(
        Finetune.user_id == user_id, Finetune.status.in_(ACTIVE_STATUSES), Finetune.id != (excluding or "")
    )
    return int(session.scalar(generations) or 0) + int(session.scalar(finetunes) or 0)
