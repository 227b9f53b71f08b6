"""Declarative base and the column types every table shares."""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, DateTime, Enum, Float, ForeignKey, Integer, MetaData, String, Text, TypeDecorator
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Named constraints: Alembic's SQLite batch mode can only drop or alter what has a name.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ID_LENGTH = 32


def new_id() -> str:
    return uuid.uuid4().hex


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite drops the offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use app.model_base.utcnow()")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JSONType = JSON().with_variant(JSONB(), "postgresql")


def string_enum(enum_class: type[enum.Enum]) -> Enum:
    # Stored as plain strings without a database CHECK: adding a value later (a new
    # ledger reason, a new job phase) needs no migration.
    return Enum(
        enum_class,
        native_enum=False,
        create_constraint=False,
        length=32,
        validate_strings=True,
        values_callable=lambda members: [member.value for member in members],
    )


class JobStatus(enum.StrEnum):
    """Lifecycle shared by generation and fine-tune jobs."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def is_final(self) -> bool:
        return self in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime(), dict[str, Any]: JSONType}


def id_column() -> Mapped[str]:
    return mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)


def created_at_column() -> Mapped[datetime]:
    return mapped_column(default=utcnow, nullable=False)


def owner_column(indexed: bool = True) -> Mapped[str]:
    """The owning user; every owned row is deleted with its user.

    `indexed=False` where a composite index starting with user_id already serves.
    """
    return mapped_column(
        String(ID_LENGTH), ForeignKey("users.id", ondelete="CASCADE"), index=indexed, nullable=False
    )


class JobColumns:
    """The columns every kind of job has; the job layer (app/jobs) owns what they mean.

    `attempts` counts claims: a worker's writes carry the attempt it claimed, so a worker that
    was presumed dead (and whose job went to another) can no longer change the job. The outbox:
    `dispatched_at` is when the job's task was last sent (NULL: not sent yet), `dispatches`
    how often. `settled_at`: when the credits of a finished job were settled.
    """

    status: Mapped[JobStatus] = mapped_column(string_enum(JobStatus), default=JobStatus.QUEUED, nullable=False)
    progress: Mapped[float] = mapped_column(Float, default=0.0, nullable=False)
    error: Mapped[str | None] = mapped_column(Text)
    cost: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    created_at: Mapped[datetime] = created_at_column()
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    # Written by the worker while it runs; a stale value marks a job whose worker died.
    heartbeat_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0", nullable=False)
    dispatched_at: Mapped[datetime | None]
    dispatches: Mapped[int] = mapped_column(Integer, default=0, server_default="0", nullable=False)
    # Indexed: the reconciler looks for jobs that ended and are not settled (NULL here).
    settled_at: Mapped[datetime | None] = mapped_column(index=True)
