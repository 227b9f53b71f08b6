"""Queries for subjects, their photos, fine-tune jobs and personal models.

State changes of a fine-tune that the web process and a worker may race on are single
conditional UPDATEs: whoever matches the expected state wins, the other sees rowcount 0.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from app.db import rows_changed
from app.model_base import JobStatus
from app.personalization.models import Finetune, FinetunePhase, Subject, SubjectPhoto, TrainedModel

PENDING = (JobStatus.QUEUED, JobStatus.RUNNING)


# --- subjects ---------------------------------------------------------------------------
def tokens_of(session: Session, user_id: str) -> set[str]:
    return set(session.scalars(select(Subject.token).where(Subject.user_id == user_id)))


def subject_of(session: Session, user_id: str, subject_id: str) -> Subject | None:
    return session.scalar(select(Subject).where(Subject.id == subject_id, Subject.user_id == user_id))


def subjects_of(session: Session, user_id: str) -> list[Subject]:
    query = select(Subject).where(Subject.user_id == user_id).order_by(Subject.created_at.desc(), Subject.id)
    return list(session.scalars(query))


def photo_counts(session: Session, subject_ids: list[str]) -> dict[str, int]:
    if not subject_ids:
        return {}
    query = (
        select(SubjectPhoto.subject_id, func.count())
        .where(SubjectPhoto.subject_id.in_(subject_ids))
        .group_by(SubjectPhoto.subject_id)
    )
    return {subject_id: count for subject_id, count in session.execute(query)}


def photos_of(session: Session, subject_id: str) -> list[SubjectPhoto]:
    query = select(SubjectPhoto).where(SubjectPhoto.subject_id == subject_id).order_by(SubjectPhoto.created_at, SubjectPhoto.id)
    return list(session.scalars(query))


# --- fine-tunes -------------------------------------------------------------------------
def finetune_of(session: Session, user_id: str, finetune_id: str) -> Finetune | None:
    return session.scalar(select(Finetune).where(Finetune.id == finetune_id, Finetune.user_id == user_id))


def finetune_by_id(session: Session, finetune_id: str) -> Finetune | None:
    return session.get(Finetune, finetune_id, populate_existing=True)


def status_of(session: Session, finetune_id: str) -> JobStatus | None:
    return session.scalar(select(Finetune.status).where(Finetune.id == finetune_id))


def update_where(session: Session, finetune_id: str, allowed: tuple[JobStatus, ...], **values: Any) -> bool:
    """Set `values` if the job is in one of the `allowed` states; True when it was."""
    statement = (
        update(Finetune)
        .where(Finetune.id == finetune_id, Finetune.status.in_(allowed))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return rows_changed(session, statement) == 1


def claim(session: Session, finetune_id: str, stale_before: datetime, now: datetime) -> bool:
    """Mark a job running for this worker: it must be queued, or running with a heartbeat
    older than `stale_before` (its worker died). A job another worker is busy with stays."""
    statement = (
        update(Finetune)
        .where(
            Finetune.id == finetune_id,
            or_(
                Finetune.status == JobStatus.QUEUED,
                (Finetune.status == JobStatus.RUNNING)
                & or_(Finetune.heartbeat_at.is_(None), Finetune.heartbeat_at < stale_before),
            ),
        )
        .values(
            status=JobStatus.RUNNING,
            heartbeat_at=now,
            started_at=func.coalesce(Finetune.started_at, now),
            attempts=Finetune.attempts + 1,
            expected_finish_at=None,
            error=None,
        )
        .execution_options(synchronize_session=False)
    )
    return rows_changed(session, statement) == 1


def stale_running_ids(session: Session, stale_before: datetime) -> list[str]:
    query = select(Finetune.id).where(
        Finetune.status == JobStatus.RUNNING,
        or_(Finetune.heartbeat_at.is_(None), Finetune.heartbeat_at < stale_before),
    )
    return list(session.scalars(query))


def requeue_if_stale(session: Session, finetune_id: str, stale_before: datetime) -> bool:
    """Put a dead worker's job back to queued; only one of several sweeping workers wins."""
    statement = (
        update(Finetune)
        .where(
            Finetune.id == finetune_id,
            Finetune.status == JobStatus.RUNNING,
            or_(Finetune.heartbeat_at.is_(None), Finetune.heartbeat_at < stale_before),
        )
        .values(status=JobStatus.QUEUED, phase=FinetunePhase.QUEUED, expected_finish_at=None)
        .execution_options(synchronize_session=False)
    )
    return rows_changed(session, statement) == 1


# --- personal models --------------------------------------------------------------------
def trained_model(session: Session, model_id: str) -> TrainedModel | None:
    return session.get(TrainedModel, model_id)
