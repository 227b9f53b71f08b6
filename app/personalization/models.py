"""Subjects, their photos, fine-tune jobs and the models they (or base training) produce."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.model_base import (
    ID_LENGTH,
    Base,
    JobColumns,
    created_at_column,
    id_column,
    owner_column,
    string_enum,
)


class FinetunePhase(enum.StrEnum):
    QUEUED = "queued"
    PREPARING = "preparing"
    CLASS_IMAGES = "class_images"
    TRAINING = "training"
    VALIDATING = "validating"
    DONE = "done"


class ModelKind(enum.StrEnum):
    BASE = "base"
    PERSONAL = "personal"


class Subject(Base):
    __tablename__ = "subjects"

    id: Mapped[str] = id_column()
    user_id: Mapped[str] = owner_column()
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    class_noun: Mapped[str] = mapped_column(String(64), nullable=False)
    token: Mapped[str] = mapped_column(String(64), nullable=False)  # identifier for prompts
    created_at: Mapped[datetime] = created_at_column()

    photos: Mapped[list[SubjectPhoto]] = relationship(
        back_populates="subject", cascade="all, delete-orphan"
    )


class SubjectPhoto(Base):
    __tablename__ = "subject_photos"
    __table_args__ = (UniqueConstraint("subject_id", "sha256"),)  # no exact duplicates

    id: Mapped[str] = id_column()
    subject_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("subjects.id", ondelete="CASCADE"), index=True, nullable=False
    )
    path: Mapped[str] = mapped_column(String(1024), nullable=False)  # relative to storage
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    width: Mapped[int] = mapped_column(Integer, nullable=False)
    height: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at: Mapped[datetime] = created_at_column()

    subject: Mapped[Subject] = relationship(back_populates="photos")


class TrainedModel(Base):
    __tablename__ = "trained_models"

    id: Mapped[str] = id_column()
    # NULL for base models, which every user may use.
    user_id: Mapped[str | None] = mapped_column(
        String(ID_LENGTH), ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    kind: Mapped[ModelKind] = mapped_column(string_enum(ModelKind), nullable=False)
    token: Mapped[str | None] = mapped_column(String(64))
    class_noun: Mapped[str | None] = mapped_column(String(64))
    method: Mapped[str | None] = mapped_column(String(32))  # "full" | "lora"
    base_model_id: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    path: Mapped[str] = mapped_column(String(1024), nullable=False)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict, nullable=False)
    created_at: Mapped[datetime] = created_at_column()


class Finetune(JobColumns, Base):
    __tablename__ = "finetunes"
    __table_args__ = (
        Index("ix_finetunes_user_created", "user_id", "created_at"),
        # The reconciler's queued and running jobs.
        Index("ix_finetunes_status_created", "status", "created_at"),
    )

    id: Mapped[str] = id_column()
    user_id: Mapped[str] = owner_column(indexed=False)
    subject_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("subjects.id", ondelete="CASCADE"), index=True, nullable=False
    )
    phase: Mapped[FinetunePhase] = mapped_column(
        string_enum(FinetunePhase), default=FinetunePhase.QUEUED, nullable=False
    )
    step: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    total_steps: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    config: Mapped[dict[str, Any]] = mapped_column(default=dict, nullable=False)
    checkpoint_dir: Mapped[str | None] = mapped_column(String(1024))
    trained_model_id: Mapped[str | None] = mapped_column(
        String(ID_LENGTH), ForeignKey("trained_models.id", ondelete="SET NULL")
    )
    # Written by the worker while it trains: when it expects to finish (the API's ETA), and
    # the first step of the latest run when it continued from a checkpoint instead of step 0.
    expected_finish_at: Mapped[datetime | None]
    resumed_from_step: Mapped[int | None] = mapped_column(Integer)
    # Best step (workers/dreambooth/best_step.py): {"checkpoints": [{"step", "scores"}], "chosen_step", "rule"}
    checkpoint_scores: Mapped[dict[str, Any] | None]
