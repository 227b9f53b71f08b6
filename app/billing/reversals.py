"""Money back: a refunded or disputed pack payment takes its credits back.

The rule (README, "Refunds and disputes"): a refund or dispute of a share of a pack's price
is due back that share of its credits, rounded up. What is unspent is taken at once; the
paid balance may go below zero for it by at most IMAGEBOOTH_REFUND_MAX_DEBT (default 0:
never below zero). What had been spent beyond that is written off (logged), and is not
taken from later purchases. Refunds come cumulatively (`amount_refunded`), so a second
partial refund takes only the difference; a refund and a dispute of the same payment never
take more than the pack's credits together.

The payment intent recorded when the pack was credited (app/billing/fulfilment.py) maps the
event back; payments that bought no pack (plan invoices, other products) are ignored.
"""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from app.billing import repository
from app.billing.events import Charge, Dispute, Event
from app.billing.models import PackPayment
from app.credits import service as credits_service
from app.credits.models import LedgerReason

log = logging.getLogger(__name__)


def _pack_payment(session: Session, event: Event, payment_intent: str | None) -> PackPayment | None:
    # Locked: reversals of one payment are decided one at a time (take_back also locks the
    # user against reservations deciding meanwhile).
    payment = repository.pack_payment_for_intent(session, payment_intent) if payment_intent else None
    if payment is None:
        log.info("Stripe event %s (%s) is about a payment that bought no pack; ignored", event.id, event.type)
    return payment


def charge_refunded(session: Session, event: Event, charge: Charge) -> None:
    payment = _pack_payment(session, event, charge.payment_intent)
    if payment is None or charge.amount_refunded <= payment.refunded_cents:
        return  # nothing refunded beyond what was seen (a replay, or an older event late)
    payment.refunded_cents = charge.amount_refunded
    reference = f"stripe:refund:{charge.id}:{charge.amount_refunded}"
    _reverse(session, payment, charge.amount, LedgerReason.PAYMENT_REFUNDED, reference, "refund")


def dispute_created(session: Session, event: Event, dispute: Dispute) -> None:
    payment = _pack_payment(session, event, dispute.payment_intent)
    if payment is None or dispute.amount <= payment.disputed_cents:
        return  # a charge has one dispute: a repeat takes nothing more
    payment.disputed_cents = dispute.amount
    reference = f"stripe:dispute:{dispute.id}"
    _reverse(session, payment, dispute.amount, LedgerReason.PAYMENT_DISPUTED, reference, "dispute")


def _reverse(session: Session, payment: PackPayment, fallback_cents: int, reason: LedgerReason, reference: str,
             what: str) -> None:
    price = payment.amount_cents or fallback_cents
    returned = min(payment.refunded_cents + payment.disputed_cents, price)
    due = payment.credits if price <= 0 else -(-payment.credits * returned // price)
    wanted = due - payment.credits_reversed
    if wanted <= 0:
        return
    label = f"{what} of pack {payment.pack_id}"
    taken = credits_service.take_back(session, payment.user_id, wanted, reason, reference, label)
    payment.credits_reversed = due
    session.flush()
    if taken < wanted:
        log.warning("%s for user %s: %d of %d credits taken back, the rest had been spent",
                    label, payment.user_id, taken, wanted)
