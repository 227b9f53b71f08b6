"""Turning a paid, signed event into credits: the rules every paid event shares, and packs.

A paid event that cannot be fulfilled (it names no known user, or its credits are not a
sane number) is money taken without a service given. It must not be recorded as handled:
the webhook answers 400, the event's transaction (with its event id) rolls back, so Stripe
retries it, and an ALERT goes to the log for an operator to act on.

Packs are credited exactly once twice over: the event id is unique, and the purchase entry
in the ledger is unique per Checkout Session, so `checkout.session.completed` and
`..async_payment_succeeded` for the same checkout cannot both credit it. Each fulfilled
checkout's payment intent is recorded, so a later refund or dispute maps back to its pack.
"""

from __future__ import annotations

import logging
import re

from sqlalchemy.orm import Session

from app.auth.models import User
from app.auth.repository import user_by_id
from app.billing import repository
from app.billing.events import CheckoutSession
from app.credits import service as credits_service
from app.credits.models import LedgerReason
from app.errors import AppError

log = logging.getLogger(__name__)
alerts = logging.getLogger("imagebooth.alerts")

MAX_PACK_CREDITS = 10_000_000
USER_ID = re.compile(r"^[0-9a-f]{32}$")
CREDITS = re.compile(r"^[0-9]{1,9}$")


class Unfulfillable(AppError):
    def __init__(self, event_id: str, reason: str) -> None:
        alerts.error("ALERT billing: paid Stripe event %s not fulfilled (%s); left for Stripe to retry", event_id, reason)
        super().__init__("unfulfillable_event", f"The event cannot be fulfilled: {reason}.", 400)


def user_named(session: Session, event_id: str, metadata: dict[str, str], fallback: str | None = None) -> User:
    """The user a paid event's metadata names (set when the checkout was created)."""
    user_id = metadata.get("user_id") or fallback or ""
    user = user_by_id(session, user_id) if USER_ID.match(user_id) else None
    if user is None:
        raise Unfulfillable(event_id, f"it names no known user ({user_id[:40]!r})")
    return user


def pack_credits(event_id: str, metadata: dict[str, str]) -> int:
    raw = metadata.get("credits", "")
    credits = int(raw) if CREDITS.match(raw) else 0
    if not 0 < credits <= MAX_PACK_CREDITS:
        raise Unfulfillable(event_id, f"metadata.credits {raw[:20]!r} is not a whole number from 1 to {MAX_PACK_CREDITS}")
    return credits


def fulfil_pack(session: Session, event_id: str, checkout: CheckoutSession) -> bool:
    """Credit a paid pack checkout once; True if it was credited now."""
    if checkout.payment_status != "paid":
        return False  # async methods: async_payment_succeeded comes later
    user = user_named(session, event_id, checkout.metadata, checkout.client_reference_id)
    credits = pack_credits(event_id, checkout.metadata)
    pack = checkout.metadata.get("pack", "?")[:64]
    repository.record_pack_payment(
        session, user_id=user.id, checkout_session_id=checkout.id, payment_intent_id=checkout.payment_intent,
        pack_id=pack, credits=credits, amount_cents=checkout.amount_total or 0,
        currency=checkout.currency or "", refunded_cents=0, disputed_cents=0, credits_reversed=0,
    )
    note = f"Stripe checkout, pack {pack}"
    return credits_service.credit_paid(session, user.id, credits, LedgerReason.PURCHASE, f"stripe:{checkout.id}", note)
