"""Rules for a user's webhook endpoints: register (URL checked), list, delete, deliveries."""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.auth.models import User
from app.config import get_settings
from app.errors import AppError, NotFound
from app.webhooks import repository, signing, targets
from app.webhooks.models import WebhookDelivery, WebhookEndpoint


def register(session: Session, user: User, url: str) -> WebhookEndpoint:
    """A new endpoint with a fresh secret; 422 for a URL that may not be called, 409 past the limit."""
    settings = get_settings()
    try:
        target, _ = targets.check(url, settings.is_production)
    except targets.TargetRefused as refused:
        raise AppError("validation_error", f"url: {refused}", 422, fields=[{"field": "url", "message": str(refused)}]) from None
    if repository.endpoint_count(session, user.id) >= settings.max_webhooks_per_user:
        raise AppError("too_many_webhooks", f"An account can have {settings.max_webhooks_per_user} webhooks; "
                       "delete one first.", 409)
    endpoint = WebhookEndpoint(user_id=user.id, url=target.url, secret=signing.new_secret())
    session.add(endpoint)
    session.flush()
    return endpoint


def own_endpoint(session: Session, user: User, endpoint_id: str) -> WebhookEndpoint:
    endpoint = repository.endpoint_of(session, user.id, endpoint_id)
    if endpoint is None:
        raise NotFound("webhook")
    return endpoint


def delete(session: Session, user: User, endpoint_id: str) -> None:
    """The endpoint and its deliveries; pending ones are never sent."""
    session.delete(own_endpoint(session, user, endpoint_id))
    session.flush()


def deliveries(session: Session, user: User, endpoint_id: str, limit: int) -> list[WebhookDelivery]:
    return repository.deliveries_of(session, own_endpoint(session, user, endpoint_id).id, limit)
