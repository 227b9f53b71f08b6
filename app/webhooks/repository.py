"""Queries for webhook endpoints and deliveries (owned rows always filter by owner)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, selectinload

from app.db import rows_changed
from app.webhooks.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint


def endpoints_of(session: Session, user_id: str) -> list[WebhookEndpoint]:
    return list(session.scalars(
        select(WebhookEndpoint).where(WebhookEndpoint.user_id == user_id)
        .order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)
    ))


def endpoint_count(session: Session, user_id: str) -> int:
    return session.scalar(select(func.count()).select_from(WebhookEndpoint).where(WebhookEndpoint.user_id == user_id)) or 0


def endpoint_of(session: Session, user_id: str, endpoint_id: str) -> WebhookEndpoint | None:
    return session.scalars(
        select(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id, WebhookEndpoint.user_id == user_id)
    ).one_or_none()


def deliveries_of(session: Session, endpoint_id: str, limit: int) -> list[WebhookDelivery]:
    return list(session.scalars(
        select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id)
        .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc()).limit(limit)
        .options(selectinload(WebhookDelivery.attempts))
    ))


def due(session: Session, now: datetime, limit: int) -> list[tuple[str, datetime]]:
    """(id, next_attempt_at) of pending deliveries whose time has come, oldest first."""
    rows = session.execute(
        select(WebhookDelivery.id, WebhookDelivery.next_attempt_at)
        .where(WebhookDelivery.status == DeliveryStatus.PENDING, WebhookDelivery.next_attempt_at <= now)
        .order_by(WebhookDelivery.next_attempt_at).limit(limit)
    )
    return [(row.id, row.next_attempt_at) for row in rows]


def lease(session: Session, delivery_id: str, seen: datetime, until: datetime) -> bool:
    """Take a due delivery for one sender: moves its next attempt to `until`, only if nobody
    moved it since it was seen (another worker's loop may have taken it)."""
    return rows_changed(session, update(WebhookDelivery).where(
        WebhookDelivery.id == delivery_id,
        WebhookDelivery.status == DeliveryStatus.PENDING,
        WebhookDelivery.next_attempt_at == seen,
    ).values(next_attempt_at=until)) == 1
