"""The job state machine's transitions, for the web, the worker and the reconciler alike.

Callers own the transaction. What must follow a committed change is registered as an
after-commit effect (app/unit_of_work.py) and is also visible in the rows, for the reconciler:
a job that ended is settled (`settled_at` NULL until then), a job queued again is sent
(`dispatched_at` NULL until then), and a generation's long-polls are woken.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from redis.exceptions import RedisError
from sqlalchemy.orm import Session

from app.auth.models import User
from app.credits import service as credits
from app.errors import ServiceUnavailable
from app.jobs import outbox, repository, settlement
from app.jobs.kinds import JobKind, JobRow
from app.model_base import JobStatus, utcnow
from app.unit_of_work import after_commit
from app.webhooks import events as webhook_events

GATE_UNREACHABLE = "The credit service is unreachable, so nothing was charged and no job was made; try again shortly."
GAVE_UP_MESSAGE = (
    "The worker running this job stopped unexpectedly (it crashed or was restarted) {attempts} times, "
    "so it was given up; your credits for it are back."
)


def submit(session: Session, kind: JobKind, user: User, job: JobRow) -> None:
    """Place a new job in its queue's order (by its owner's priority), reserve its cost and
    write it, queued; its task is sent after the commit.

    429 when the user has as many jobs queued or running as the tier allows, 402 on a short
    balance, 503 when the credit gate is unreachable (the request rolls back: nothing charged).
    A concurrent duplicate's IntegrityError comes out of the write, its reservation still in
    this transaction. Reserving first means a refused job is never written (and the write runs
    in a transaction already begun, which SQLite's savepoints need)."""
    rights = credits.check_concurrency(session, user, excluding=job.id)
    kind.place(session, job, rights.priority)
    with credit_gate():
        credits.reserve(session, user, job.cost, kind.reference(job.id))
    with session.begin_nested():
        session.add(job)
    outbox.send_after_commit(session, kind, job.id)


@contextmanager
def credit_gate() -> Iterator[None]:
    """Redis (the credit gate) away is a 503 with Retry-After, never a 500."""
    try:
        yield
    except RedisError as exc:
        raise ServiceUnavailable(GATE_UNREACHABLE) from exc


def finish(
    session: Session, kind: JobKind, job_id: str, status: JobStatus, allowed: tuple[JobStatus, ...] = repository.RUNNING,
    attempt: int | None = None, beat_before: datetime | None = None, **values: Any,
) -> bool:
    """Move a job into a final state (only from `allowed`, on `attempt`); its credits are
    settled after the commit. False when someone else moved it first (nothing changes)."""
    assert status.is_final
    now = utcnow()
    ended = repository.transition(session, kind.model, job_id, allowed, attempt, beat_before,
                                  status=status, finished_at=now, heartbeat_at=now, **values)
    if ended:
        # in this transaction: an event exists exactly when the final state does
        webhook_events.job_ended(session, kind, job_id, status)
        after_commit(session, lambda: settlement.settle(kind, job_id))
        announce_after_commit(session, kind, job_id)
    return ended


def cancel(session: Session, kind: JobKind, job_id: str) -> bool:
    """Its owner's cancel: a queued job never runs; a running one's worker stops at its
    next report or cancel check. False when the job had ended already."""
    return finish(session, kind, job_id, JobStatus.CANCELED, allowed=repository.ACTIVE, error=None)


def recover_stale(session: Session, kind: JobKind, job_id: str, attempt: int, beat_before: datetime) -> JobStatus | None:
    """A running job whose worker stopped beating: queued again and sent after the commit, or
    failed (and refunded) once it has had `kind.max_attempts` tries. None when it beat
    meanwhile or someone else moved it."""
    if attempt >= kind.max_attempts:
        failed = finish(session, kind, job_id, JobStatus.FAILED, attempt=attempt, beat_before=beat_before,
                        error=GAVE_UP_MESSAGE.format(attempts=attempt))
        return JobStatus.FAILED if failed else None
    queued = repository.transition(session, kind.model, job_id, repository.RUNNING, attempt, beat_before,
                                   status=JobStatus.QUEUED, dispatched_at=None, **kind.requeue_values)
    if not queued:
        return None
    outbox.send_after_commit(session, kind, job_id)
    announce_after_commit(session, kind, job_id)
    return JobStatus.QUEUED


def announce_after_commit(session: Session, kind: JobKind, job_id: str) -> None:
    after_commit(session, lambda: kind.announce(job_id))
