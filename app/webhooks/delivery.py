"""What the worker's delivery loop runs: take due deliveries, send each, record the attempt.

A failed attempt is retried after `webhook_retry_first_s`, then three times longer each time
(at most four hours apart), until `webhook_retry_for_s` after the event (a day): then the
delivery is given up. Every attempt is a row the API shows. Sending happens outside any
transaction and in the worker's own thread, so a slow or dead endpoint never delays a job.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from app.config import Settings, get_settings
from app.db import session_scope
from app.model_base import utcnow
from app.webhooks import repository, sender
from app.webhooks.models import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEndpoint

log = logging.getLogger(__name__)
MAX_RETRY_GAP_S = 4 * 3600
BACKOFF_FACTOR = 3


def retry_delay(failed_attempts: int, settings: Settings) -> timedelta:
    """How long to wait after the n-th failed attempt."""
    return timedelta(seconds=min(settings.webhook_retry_first_s * BACKOFF_FACTOR ** (failed_attempts - 1), MAX_RETRY_GAP_S))


def take_due(limit: int, now: datetime | None = None) -> list[str]:
    """Lease up to `limit` due deliveries to this loop (for longer than a send can take)."""
    settings = get_settings()
    now = now or utcnow()
    until = now + timedelta(seconds=2 * settings.webhook_timeout_s + 10)
    with session_scope() as session:
        return [delivery_id for delivery_id, seen in repository.due(session, now, limit)
                if repository.lease(session, delivery_id, seen, until)]


def attempt(delivery_id: str) -> sender.Outcome | None:
    """One attempt at one leased delivery; None when it is gone (its endpoint was deleted)."""
    settings = get_settings()
    with session_scope() as session:
        delivery = session.get(WebhookDelivery, delivery_id)
        endpoint = session.get(WebhookEndpoint, delivery.endpoint_id) if delivery is not None else None
        if delivery is None or endpoint is None or delivery.status != DeliveryStatus.PENDING:
            return None
        url, secret, body = endpoint.url, endpoint.secret, delivery.body.encode()
    outcome = sender.post(url, body, secret, settings.is_production, settings.webhook_timeout_s)
    with session_scope() as session:
        record(session, delivery_id, outcome, utcnow(), settings)
    return outcome


def record(session: Session, delivery_id: str, outcome: sender.Outcome, now: datetime, settings: Settings) -> None:
    delivery = session.get(WebhookDelivery, delivery_id)
    if delivery is None:  # deleted with its endpoint while being sent
        return
    delivery.attempt_count += 1
    session.add(WebhookAttempt(delivery_id=delivery.id, number=delivery.attempt_count, attempted_at=now,
                               status_code=outcome.status_code, error=outcome.error, duration_ms=outcome.duration_ms))
    if outcome.delivered:
        delivery.status, delivery.next_attempt_at, delivery.finished_at = DeliveryStatus.DELIVERED, None, now
        return
    retry_at = now + retry_delay(delivery.attempt_count, settings)
    if retry_at > delivery.created_at + timedelta(seconds=settings.webhook_retry_for_s):
        delivery.status, delivery.next_attempt_at, delivery.finished_at = DeliveryStatus.FAILED, None, now
        log.warning("webhook delivery %s (%s) given up after %d attempts: %s", delivery.id, delivery.event_type,
                    delivery.attempt_count, outcome.error)
    else:
        delivery.next_attempt_at = retry_at

