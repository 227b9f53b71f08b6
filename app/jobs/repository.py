"""Every query of the job layer, for any kind of job (`model` is the kind's table).

State changes are single conditional UPDATEs: whoever finds the job in the expected state
wins, everyone else sees rowcount 0 and changes nothing. A worker's writes also name the
attempt it claimed, so a worker presumed dead cannot touch a job someone else now runs.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from app.db import rows_changed
from app.generation.models import Generation
from app.jobs.kinds import JobRow
from app.model_base import JobStatus
from app.personalization.models import Finetune

ACTIVE = (JobStatus.QUEUED, JobStatus.RUNNING)
RUNNING = (JobStatus.RUNNING,)
FINAL = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED)


def get(session: Session, model: type[JobRow], job_id: str) -> JobRow | None:
    job = session.get(model, job_id, populate_existing=True)
    assert job is None or isinstance(job, Generation | Finetune)  # what `model` maps
    return job


def transition(
    session: Session, model: type[JobRow], job_id: str, allowed: tuple[JobStatus, ...],
    attempt: int | None = None, beat_before: datetime | None = None, **values: Any,
) -> bool:
    """Set `values` if the job is in one of `allowed` (and on `attempt`, and silent since
    `beat_before`, when given); True when it was."""
    conditions = [model.id == job_id, model.status.in_(allowed)]
    if attempt is not None:
        conditions.append(model.attempts == attempt)
    if beat_before is not None:
        conditions.append(_last_beat(model) < beat_before)
    statement = update(model).where(*conditions).values(**values).execution_options(synchronize_session=False)
    return rows_changed(session, statement) == 1


def claim(session: Session, model: type[JobRow], job_id: str, now: datetime) -> int | None:
    """queued -> running for the caller; the attempt it now holds, or None (not queued)."""
    statement = (
        update(model)
        .where(model.id == job_id, model.status == JobStatus.QUEUED)
        .values(status=JobStatus.RUNNING, attempts=model.attempts + 1, heartbeat_at=now,
                started_at=func.coalesce(model.started_at, now), error=None)
        .returning(model.attempts)
        .execution_options(synchronize_session=False)
    )
    return session.scalar(statement)


def attempt_state(session: Session, model: type[JobRow], job_id: str) -> tuple[JobStatus, int] | None:
    row = session.execute(select(model.status, model.attempts).where(model.id == job_id)).one_or_none()
    return (row.status, row.attempts) if row is not None else None


def _last_beat(model: type[JobRow]) -> Any:
    return func.coalesce(model.heartbeat_at, model.started_at, model.created_at)


# --- the reconciler's searches ----------------------------------------------------------
def stale_running(session: Session, model: type[JobRow], beat_before: datetime) -> list[tuple[str, int]]:
    """(id, attempt) of running jobs whose worker has not beaten since `beat_before`."""
    query = select(model.id, model.attempts).where(model.status == JobStatus.RUNNING, _last_beat(model) < beat_before)
    return [(row.id, row.attempts) for row in session.execute(query)]


def due_for_sending(
    session: Session, model: type[JobRow], unsent_before: datetime, sent_before: datetime
) -> list[tuple[str, int, datetime | None]]:
    """(id, dispatches, dispatched_at) of queued jobs never sent since `unsent_before`, or
    last sent before `sent_before` (the caller applies each job's own back-off)."""
    query = select(model.id, model.dispatches, model.dispatched_at).where(
        model.status == JobStatus.QUEUED,
        or_(
            model.dispatched_at.is_(None) & (model.created_at < unsent_before),
            model.dispatched_at < sent_before,
        ),
    )
    return [(row.id, row.dispatches, row.dispatched_at) for row in session.execute(query)]


def unsettled(session: Session, model: type[JobRow], ended_before: datetime) -> list[str]:
    query = select(model.id).where(
        model.settled_at.is_(None), model.status.in_(FINAL),
        func.coalesce(model.finished_at, model.created_at) < ended_before,
    )
    return list(session.scalars(query))


# --- the outbox and settlement marks ---------------------------------------------------
def mark_sent(session: Session, model: type[JobRow], job_id: str, now: datetime) -> None:
    """The web's send after commit went out (a reconciler that sent it meanwhile wins)."""
    session.execute(
        update(model).where(model.id == job_id, model.dispatched_at.is_(None))
        .values(dispatched_at=now, dispatches=model.dispatches + 1)
        .execution_options(synchronize_session=False)
    )


def take_send(session: Session, model: type[JobRow], job_id: str, seen_dispatches: int, now: datetime) -> bool:
    """Claim the (re-)send of a queued job: of several reconcilers that saw it due, one wins."""
    statement = (
        update(model)
        .where(model.id == job_id, model.status == JobStatus.QUEUED, model.dispatches == seen_dispatches)
        .values(dispatched_at=now, dispatches=seen_dispatches + 1)
        .execution_options(synchronize_session=False)
    )
    return rows_changed(session, statement) == 1


def mark_unsent(session: Session, model: type[JobRow], job_id: str, dispatches: int) -> None:
    """A send that failed: the job is due again at the next round."""
    session.execute(
        update(model).where(model.id == job_id, model.dispatches == dispatches)
        .values(dispatched_at=None).execution_options(synchronize_session=False)
    )


def mark_settled(session: Session, model: type[JobRow], job_id: str, now: datetime) -> None:
    session.execute(
        update(model).where(model.id == job_id, model.settled_at.is_(None))
        .values(settled_at=now).execution_options(synchronize_session=False)
    )
