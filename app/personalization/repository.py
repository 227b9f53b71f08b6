"""Queries for subjects, their photos, fine-tune jobs and personal models (a fine-tune's
state changes are the job layer's: app/jobs/repository.py)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.personalization.models import (
    Finetune,
    Subject,
    SubjectPhoto,
    TrainedModel,
)


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


def finetunes_of(session: Session, user_id: str, subject_id: str | None, limit: int) -> list[Finetune]:
    """The user's fine-tunes (of one subject, if given), newest first."""
    query = select(Finetune).where(Finetune.user_id == user_id)
    if subject_id is not None:
        query = query.where(Finetune.subject_id == subject_id)
    return list(session.scalars(query.order_by(Finetune.created_at.desc(), Finetune.id.desc()).limit(limit)))


def finetune_by_id(session: Session, finetune_id: str) -> Finetune | None:
    return session.get(Finetune, finetune_id, populate_existing=True)


# --- personal models --------------------------------------------------------------------
def trained_model(session: Session, model_id: str) -> TrainedModel | None:
    return session.get(TrainedModel, model_id)
