"""Every query on generations and images. Owned rows are always filtered by owner."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session, selectinload

from app.generation.models import Generation, Image
from app.model_base import JobStatus


def get(session: Session, job_id: str) -> Generation | None:
    return session.get(Generation, job_id)


def get_owned(session: Session, user_id: str, job_id: str) -> Generation | None:
    return session.scalars(
        select(Generation)
        .where(Generation.id == job_id, Generation.user_id == user_id)
        .options(selectinload(Generation.images))
    ).one_or_none()


def by_idempotency_key(session: Session, user_id: str, key: str) -> Generation | None:
    return session.scalars(
        select(Generation).where(Generation.user_id == user_id, Generation.idempotency_key == key)
    ).one_or_none()


def page_of(
    session: Session, user_id: str, limit: int, after: tuple[datetime, str] | None
) -> list[Generation]:
    """Up to `limit` jobs newest first, strictly after the (created_at, id) keyset `after`."""
    query = select(Generation).where(Generation.user_id == user_id)
    if after is not None:
        created_at, job_id = after
        query = query.where(
            or_(
                Generation.created_at < created_at,
                and_(Generation.created_at == created_at, Generation.id < job_id),
            )
        )
    query = query.order_by(Generation.created_at.desc(), Generation.id.desc()).limit(limit)
    return list(session.scalars(query.options(selectinload(Generation.images))))


def progress_snapshot(session: Session, user_id: str, job_id: str) -> tuple[JobStatus, float] | None:
    row = session.execute(
        select(Generation.status, Generation.progress).where(
            Generation.id == job_id, Generation.user_id == user_id
        )
    ).one_or_none()
    return (row.status, row.progress) if row is not None else None


def image_owned(session: Session, user_id: str, image_id: str) -> Image | None:
    return session.scalars(
        select(Image).where(Image.id == image_id, Image.user_id == user_id).options(selectinload(Image.generation))
    ).one_or_none()

