"""Queries for trained_models as the catalog sees them (owned rows always filter by owner)."""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from app.personalization.models import ModelKind, TrainedModel


def get(session: Session, model_id: str) -> TrainedModel | None:
    return session.get(TrainedModel, model_id)


def visible_to(session: Session, user_id: str, model_id: str) -> TrainedModel | None:
    """A model the user may generate with: a base model or one of their own."""
    return session.scalars(
        select(TrainedModel).where(
            TrainedModel.id == model_id,
            or_(TrainedModel.kind == ModelKind.BASE, TrainedModel.user_id == user_id),
        )
    ).one_or_none()


def personal_models_of(session: Session, user_id: str) -> list[TrainedModel]:
    return list(
        session.scalars(
            select(TrainedModel)
            .where(TrainedModel.user_id == user_id, TrainedModel.kind == ModelKind.PERSONAL)
            .order_by(TrainedModel.created_at.desc(), TrainedModel.id.desc())
        )
    )
