"""Accounts and their API keys."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from app.model_base import Base, created_at_column, id_column, owner_column


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = id_column()
    # Stored lower-cased by the service, so the unique index is case-insensitive in effect.
    email: Mapped[str] = mapped_column(String(320), unique=True, nullable=False)
    password_hash: Mapped[str] = mapped_column(String(255), nullable=False)
    created_at: Mapped[datetime] = created_at_column()


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = id_column()
    user_id: Mapped[str] = owner_column()
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    # The first characters of the key, shown in listings so users can tell keys apart.
    prefix: Mapped[str] = mapped_column(String(16), nullable=False)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    created_at: Mapped[datetime] = created_at_column()
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
