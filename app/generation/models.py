"""Generation jobs and the images they produce."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.model_base import (
    ID_LENGTH,
    Base,
    JobColumns,
    JSONType,
    created_at_column,
    id_column,
    owner_column,
)


class Generation(JobColumns, Base):
    __tablename__ = "generations"
    __table_args__ = (
        # A repeated request with the same Idempotency-Key finds the first job.
        UniqueConstraint("user_id", "idempotency_key"),
        # History pages: the caller's jobs, newest first.
        Index("ix_generations_user_created", "user_id", "created_at"),
        # Queue position, and the reconciler's queued and running jobs.
        Index("ix_generations_status_created", "status", "created_at"),
    )

    id: Mapped[str] = id_column()
    user_id: Mapped[str] = owner_column(indexed=False)
    prompt: Mapped[str] = mapped_column(Text, nullable=False)  # a prompt list's first
    prompts: Mapped[list[str] | None] = mapped_column(JSONType)  # a prompt list: image k's is prompts[k]
    negative_prompt: Mapped[str] = mapped_column(Text, default="", nullable=False)
    n: Mapped[int] = mapped_column(Integer, default=1, nullable=False)
    steps: Mapped[int] = mapped_column(Integer, nullable=False)
    guidance_scale: Mapped[float] = mapped_column(Float, nullable=False)
    seed: Mapped[int | None] = mapped_column(BigInteger)  # base seed; image i uses its own
    # A trained_models id; kept as a plain string so history survives a deleted model.
    model_id: Mapped[str] = mapped_column(String(ID_LENGTH), nullable=False)
    profile: Mapped[str] = mapped_column(String(32), default="fast", nullable=False)
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    # Its place in the queue (app/generation/scheduling.py): higher priority runs first, then
    # the fair-share start tag (users take turns), then age.
    priority: Mapped[int] = mapped_column(Integer, default=0, server_default="0", nullable=False)
    fair_start: Mapped[float] = mapped_column(Float, default=0.0, server_default="0", nullable=False)
    # Measured by the worker: seconds per picture and step of the batch that made it (the
    # estimated wait of the jobs queued after it).
    image_step_s: Mapped[float | None] = mapped_column(Float)

    images: Mapped[list[Image]] = relationship(
        back_populates="generation", order_by="Image.index", cascade="all, delete-orphan"
    )

    def prompt_of(self, index: int) -> str:
        """The prompt image `index` was drawn from."""
        return self.prompts[index] if self.prompts else self.prompt

    def image_prompts(self) -> list[str]:
        return list(self.prompts) if self.prompts else [self.prompt] * self.n


class Image(Base):
    __tablename__ = "images"
    # A re-delivered task rewrites image i instead of adding a second one.
    __table_args__ = (UniqueConstraint("generation_id", "index"),)

    id: Mapped[str] = id_column()
    generation_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("generations.id", ondelete="CASCADE"), nullable=False
    )
    user_id: Mapped[str] = owner_column()
    index: Mapped[int] = mapped_column(Integer, nullable=False)
    seed: Mapped[int] = mapped_column(BigInteger, nullable=False)
    path: Mapped[str] = mapped_column(String(1024), nullable=False)  # relative to storage
    width: Mapped[int] = mapped_column(Integer, nullable=False)
    height: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at: Mapped[datetime] = created_at_column()

    generation: Mapped[Generation] = relationship(back_populates="images")
