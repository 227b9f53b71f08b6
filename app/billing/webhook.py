"""Stripe's signed webhook: verify, parse, record the event id, fulfil.

1. verify: the signature over the exact bytes, a timestamp neither older than the
   tolerance nor further in the future than FUTURE_SKEW_S (a clock a little ahead is
   normal; an hour ahead would let a captured event be replayed for that long);
2. parse: the envelope and the object each handler reads, strictly (app/billing/events.py);
   a malformed event is logged and answered 400, never 500;
3. record the event id: a replay stops here (200, duplicate);
4. fulfil. A paid event that cannot be fulfilled raises `Unfulfillable` (400): the request's
   transaction rolls back with its event id, so Stripe's retry gets another chance.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy.orm import Session

from app.billing import repository, reversals, subscriptions
from app.billing.events import Charge, CheckoutSession, Dispute, Event, Invoice, Subscription
from app.billing.fulfilment import alerts, fulfil_pack
from app.billing.service import payments_disabled
from app.config import get_settings
from app.errors import AppError

log = logging.getLogger(__name__)
Parsed = TypeVar("Parsed", bound=BaseModel)
FUTURE_SKEW_S = 60
# Money arrived with these: when one cannot be fulfilled, the log raises an alert.
PAID_EVENTS = frozenset({
    "checkout.session.completed", "checkout.session.async_payment_succeeded", "invoice.paid",
    "invoice.payment_succeeded",
})


@dataclass(frozen=True)
class WebhookResult:
    event_id: str
    duplicate: bool


def _checkout(session: Session, event: Event, checkout: CheckoutSession) -> None:
    if checkout.mode == "subscription":
        subscriptions.link_checkout(session, event, checkout)
    else:
        fulfil_pack(session, event.id, checkout)


Handler = Callable[[Session, Event, Any], None]
HANDLERS: dict[str, tuple[type[BaseModel], Handler]] = {
    "checkout.session.completed": (CheckoutSession, _checkout),
    "checkout.session.async_payment_succeeded": (CheckoutSession, _checkout),
    # Stripe sends both for one payment: the invoice id makes the second grant nothing.
    "invoice.paid": (Invoice, subscriptions.invoice_paid),
    "invoice.payment_succeeded": (Invoice, subscriptions.invoice_paid),
    "invoice.payment_failed": (Invoice, subscriptions.invoice_failed),
    "customer.subscription.created": (Subscription, subscriptions.subscription_changed),
    "customer.subscription.updated": (Subscription, subscriptions.subscription_changed),
    "customer.subscription.deleted": (Subscription, subscriptions.subscription_changed),
    "charge.refunded": (Charge, reversals.charge_refunded),
    "charge.dispute.created": (Dispute, reversals.dispute_created),
}


def handle_webhook(session: Session, payload: bytes, signature: str | None) -> WebhookResult:
    verify(payload, signature)
    event = _parse(Event, _json(payload), "event")
    if not repository.record_event(session, event.id, event.type):
        return WebhookResult(event.id, duplicate=True)
    handler = HANDLERS.get(event.type)
    if handler is not None:
        model, fulfil = handler
        what = f"event {event.id} ({event.type})"
        fulfil(session, event, _parse(model, event.data.object, what, paid=event.type in PAID_EVENTS))
    return WebhookResult(event.id, duplicate=False)


def verify(payload: bytes, signature: str | None) -> None:
    import stripe  # lazily: the package is slow to import

    settings = get_settings()
    if settings.stripe_webhook_secret is None:
        raise payments_disabled()
    try:
        stripe.WebhookSignature.verify_header(
            payload, signature, settings.stripe_webhook_secret.get_secret_value(),
            tolerance=settings.stripe_webhook_tolerance_s,
        )
    except stripe.SignatureVerificationError as invalid:
        raise _invalid_signature() from invalid
    except ValueError as invalid:  # not UTF-8
        raise AppError("invalid_payload", "The event is not valid JSON.", 400) from invalid
    assert signature is not None  # verified
    # Verified, so the header holds an integer t=; the library only bounds its age.
    stamp = next(int(part[2:]) for part in signature.split(",") if part.startswith("t="))
    if stamp > time.time() + FUTURE_SKEW_S:
        raise _invalid_signature()


def _invalid_signature() -> AppError:
    return AppError("invalid_signature", "The Stripe signature is missing, invalid, too old or from the future.", 400)


def _json(payload: bytes) -> Any:
    try:
        return json.loads(payload)
    except (ValueError, RecursionError) as invalid:  # RecursionError: absurdly deep nesting
        raise AppError("invalid_payload", "The event is not valid JSON.", 400) from invalid


def _parse(model: type[Parsed], data: Any, what: str, paid: bool = False) -> Parsed:
    try:
        return model.model_validate(data)
    except ValidationError as invalid:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'body'}: {error['msg']}" for error in invalid.errors()[:5]
        )
        if paid:  # money may be waiting behind it
            alerts.error("ALERT billing: paid Stripe %s is malformed and was not fulfilled: %s", what, problems)
        else:
            log.warning("Stripe %s is malformed: %s", what, problems)
        raise AppError("invalid_payload", f"The event is malformed: {problems}", 400) from invalid
