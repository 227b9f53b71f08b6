"""Buying credits: packs, Checkout Sessions, and the webhook that credits a paid checkout.

Fulfilment is exactly-once twice over: the event id is recorded (unique) before anything
else in the webhook's transaction, and the purchase entry in the ledger is unique per
Checkout Session, so `checkout.session.completed` and `..async_payment_succeeded` for the
same checkout cannot both credit it either.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from app.auth.models import User
from app.auth.repository import user_by_id
from app.billing import repository
from app.billing.stripe_client import CheckoutClient
from app.config import CreditPack, Settings, get_settings
from app.credits import service as credits_service
from app.errors import AppError

log = logging.getLogger(__name__)

FULFILLING_EVENTS = frozenset({"checkout.session.completed", "checkout.session.async_payment_succeeded"})


@dataclass(frozen=True)
class WebhookResult:
    event_id: str
    duplicate: bool
    credited: bool


def payments_enabled(settings: Settings | None = None) -> bool:
    settings = settings or get_settings()
    return settings.stripe_secret_key is not None and settings.stripe_webhook_secret is not None


def _payments_disabled() -> AppError:
    return AppError("payments_disabled", "Payments are not enabled on this server.", 503)


def packs() -> list[CreditPack]:
    return list(get_settings().credit_packs)


def start_checkout(user: User, pack_id: str) -> str:
    """A Stripe Checkout page for one pack; returns its URL."""
    settings = get_settings()
    if not payments_enabled(settings):
        raise _payments_disabled()
    pack = next((pack for pack in settings.credit_packs if pack.id == pack_id), None)
    if pack is None:
        known = ", ".join(pack.id for pack in settings.credit_packs)
        raise AppError("validation_error", f"pack: unknown pack {pack_id!r} (one of: {known})", 422)
    import stripe  # here, not at the top: the stripe package costs the web process's start-up ~0.2 s

    assert settings.stripe_secret_key is not None  # payments_enabled checked it
    client = CheckoutClient(settings.stripe_secret_key.get_secret_value(), settings.stripe_api_base)
    base = settings.public_url.rstrip("/")
    try:
        checkout = client.create_checkout(pack, user.id, f"{base}/?purchase=success", f"{base}/?purchase=canceled")
    except stripe.StripeError as failure:
        log.error("Stripe checkout creation failed: %s", failure)
        raise AppError("payment_provider_error", "The payment provider did not answer; try again.", 502) from failure
    return checkout.url


def handle_webhook(session: Session, payload: bytes, signature: str | None) -> WebhookResult:
    # 1. verify: signature and timestamp, before reading anything
    import stripe  # lazily, as in create_checkout

    settings = get_settings()
    if settings.stripe_webhook_secret is None:
        raise _payments_disabled()
    try:
        event = stripe.Webhook.construct_event(
            payload, signature, settings.stripe_webhook_secret.get_secret_value(),
            tolerance=settings.stripe_webhook_tolerance_s,
        )
    except stripe.SignatureVerificationError as invalid:
        raise AppError("invalid_signature", "The Stripe signature is missing, invalid or too old.", 400) from invalid
    except ValueError as invalid:
        raise AppError("invalid_payload", "The event is not valid JSON.", 400) from invalid
    # 2. record the event id first: a replay stops here
    if not repository.record_event(session, event.id, event.type):
        return WebhookResult(event.id, duplicate=True, credited=False)
    # 3. fulfil
    credited = False
    if event.type in FULFILLING_EVENTS:
        credited = fulfil(session, event.data.object.to_dict())
    return WebhookResult(event.id, duplicate=False, credited=credited)


def fulfil(session: Session, checkout: dict[str, Any]) -> bool:
    """Credit a paid Checkout Session once; True if it was credited now."""
    if checkout.get("payment_status") != "paid":
        return False  # async methods: async_payment_succeeded comes later
    metadata = checkout.get("metadata") or {}
    user_id = metadata.get("user_id") or checkout.get("client_reference_id")
    user = user_by_id(session, user_id) if user_id else None
    try:
        credits = int(metadata.get("credits", 0))
    except (TypeError, ValueError):
        credits = 0
    if user is None or credits <= 0:
        log.error("paid checkout %s names no known user or credits; not credited", checkout.get("id"))
        return False
    note = f"Stripe checkout, pack {metadata.get('pack', '?')}"
    return credits_service.credit_purchase(session, user, credits, f"stripe:{checkout['id']}", note)
