"""Webhook endpoints, the deliveries of events to them, and every attempt at one."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.model_base import ID_LENGTH, Base, created_at_column, id_column, owner_column, string_enum

MAX_URL_CHARS = 2048


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"  # not yet accepted; next_attempt_at says when it is tried
    DELIVERED = "delivered"  # the endpoint answered 2xx
    FAILED = "failed"  # retried for the whole retry window without a 2xx: given up


class WebhookEndpoint(Base):
    __tablename__ = "webhook_endpoints"

    id: Mapped[str] = id_column()
    user_id: Mapped[str] = owner_column()
    url: Mapped[str] = mapped_column(String(MAX_URL_CHARS), nullable=False)
    # Kept readable (not hashed): every delivery is signed with it, as Stripe does.
    secret: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[datetime] = created_at_column()


class WebhookDelivery(Base):
    """One event for one endpoint; its body is fixed when the event is written."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        # The delivery loop's one query: what is due, oldest first.
        Index("ix_webhook_deliveries_status_next", "status", "next_attempt_at"),
        # An endpoint's delivery list, newest first.
        Index("ix_webhook_deliveries_endpoint_created", "endpoint_id", "created_at"),
    )

    id: Mapped[str] = id_column()
    endpoint_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), nullable=False
    )
    event_id: Mapped[str] = mapped_column(String(ID_LENGTH), nullable=False)  # shared by the event's deliveries
    event_type: Mapped[str] = mapped_column(String(64), nullable=False)
    body: Mapped[str] = mapped_column(Text, nullable=False)  # the exact JSON bytes that are signed
    status: Mapped[DeliveryStatus] = mapped_column(
        string_enum(DeliveryStatus), default=DeliveryStatus.PENDING, nullable=False
    )
    attempt_count: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    next_attempt_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = created_at_column()
    finished_at: Mapped[datetime | None]

    attempts: Mapped[list[WebhookAttempt]] = relationship(
        order_by="WebhookAttempt.number", cascade="all, delete-orphan", passive_deletes=True
    )


class WebhookAttempt(Base):
    __tablename__ = "webhook_attempts"

    id: Mapped[str] = id_column()
    delivery_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), index=True, nullable=False
    )
    number: Mapped[int] = mapped_column(Integer, nullable=False)
    attempted_at: Mapped[datetime] = created_at_column()
    status_code: Mapped[int | None] = mapped_column(Integer)  # None: no HTTP answer at all
    error: Mapped[str | None] = mapped_column(Text)  # why it did not count as delivered
    duration_ms: Mapped[int] = mapped_column(Integer, nullable=False)
