"""A plan's life from the signed events: linked, paid each period, past due, changed, ended.

Fulfilled from the events alone (nothing is read back from Stripe's API): the subscription
carries `{user_id, plan}` in its metadata and Stripe copies it onto every invoice, so any of
these events can link the subscription to its user, whichever arrives first. Stripe does not
promise their order, so the account remembers the `created` time of the newest event that
set its state, and an older one arriving later changes no state (an invoice's credits are
still granted: they are once per invoice whatever the order).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from app.billing import entitlements, repository
from app.billing.events import CheckoutSession, Event, Invoice, Subscription
from app.billing.fulfilment import Unfulfillable, alerts, user_named
from app.billing.models import BillingAccount
from app.config import Plan, get_settings
from app.credits import service as credits_service
from app.credits.models import LedgerReason
from app.model_base import utcnow

log = logging.getLogger(__name__)
PAID_CHECKOUT = frozenset({"paid", "no_payment_required"})
# Subscription events may link a subscription not seen before only in these states.
LINKABLE = entitlements.GOOD_STANDING | {"incomplete", entitlements.PAST_DUE}


def _moment(timestamp: int | None) -> datetime | None:
    return datetime.fromtimestamp(timestamp, UTC) if timestamp else None


def _plan_named(event_id: str, plan_id: str | None) -> Plan:
    plan = entitlements.plan_by_id(plan_id)
    if plan is None:
        raise Unfulfillable(event_id, f"plan {str(plan_id)[:64]!r} is not configured (IMAGEBOOTH_PLANS)")
    return plan


def _claim(session: Session, event: Event, subscription_id: str, metadata: dict[str, str],
           customer_id: str | None, replace_live: bool = True) -> BillingAccount | None:
    """The account the subscription belongs to, linking it from the metadata if this is the
    first event about it. A user's new subscription replaces the old one's link (unless
    `replace_live` is False and the old one is still live: then None)."""
    account = repository.account_for_subscription(session, subscription_id, lock=True)
    if account is not None:
        return account
    user = user_named(session, event.id, metadata)
    plan = _plan_named(event.id, metadata.get("plan"))
    account = repository.ensure_account(session, user.id, lock=True)
    live = account.subscription_id is not None and account.plan_status in entitlements.GOOD_STANDING
    if live and not replace_live:
        return None
    if live:
        alerts.error("ALERT billing: user %s has two live subscriptions (%s, %s); the newer one is kept",
                     user.id, account.subscription_id, subscription_id)
    repository.release_subscription(session, subscription_id, except_user=user.id)
    account.subscription_id, account.plan_id, account.plan_status = subscription_id, plan.id, None
    account.current_period_end = account.grace_until = None
    account.cancel_at_period_end, account.state_event_created = False, 0
    if customer_id and not account.stripe_customer_id:
        account.stripe_customer_id = customer_id
    session.flush()
    return account


def _newest(account: BillingAccount, event: Event) -> bool:
    """True (and remembered) if no newer event has set the account's state yet."""
    if event.created < account.state_event_created:
        log.info("Stripe event %s is older than the plan state it would change; state kept", event.id)
        return False
    account.state_event_created = event.created
    return True


def link_checkout(session: Session, event: Event, checkout: CheckoutSession) -> None:
    """checkout.session.completed in subscription mode: the subscription is the user's."""
    if checkout.subscription is None:
        raise Unfulfillable(event.id, "a subscription checkout without a subscription id")
    metadata = {"user_id": checkout.client_reference_id or "", **checkout.metadata}
    account = _claim(session, event, checkout.subscription, metadata, checkout.customer)
    assert account is not None
    if account.plan_status is None:  # no invoice or subscription event has said more yet
        account.plan_status = "active" if checkout.payment_status in PAID_CHECKOUT else "incomplete"
    session.flush()


def invoice_paid(session: Session, event: Event, invoice: Invoice) -> None:
    """A paid period: its credits once per invoice, and the plan active until the period ends."""
    if invoice.subscription_id is None:
        log.info("paid invoice %s belongs to no subscription; nothing to do", invoice.id)
        return
    account = _claim(session, event, invoice.subscription_id, invoice.metadata, invoice.customer)
    assert account is not None
    plan = _plan_named(event.id, account.plan_id)
    if plan.credits:
        note = f"plan {plan.name}, invoice {invoice.id}"
        credits_service.credit_paid(session, account.user_id, plan.credits, LedgerReason.PLAN_CREDITS,
                                    f"stripe:invoice:{invoice.id}", note)
    if _newest(account, event):
        account.plan_status, account.grace_until = "active", None
        paid_through = _moment(invoice.paid_through)
        if paid_through and (account.current_period_end is None or paid_through > account.current_period_end):
            account.current_period_end = paid_through
    session.flush()


def invoice_failed(session: Session, event: Event, invoice: Invoice) -> None:
    """A renewal payment failed: past due, with benefits until the grace period ends
    (Stripe retries the payment meanwhile; its later events decide)."""
    if invoice.subscription_id is None:
        return
    account = repository.account_for_subscription(session, invoice.subscription_id, lock=True)
    if account is None:
        log.warning("payment failed for unknown subscription %s (invoice %s)", invoice.subscription_id, invoice.id)
        return
    if _newest(account, event):
        _past_due(account)
    session.flush()


def _past_due(account: BillingAccount) -> None:
    if account.plan_status != entitlements.PAST_DUE or account.grace_until is None:
        account.grace_until = utcnow() + entitlements.grace()
    account.plan_status = entitlements.PAST_DUE


def subscription_changed(session: Session, event: Event, subscription: Subscription) -> None:
    """customer.subscription.created / .updated / .deleted: status, period, plan, cancellation."""
    deleted = event.type == "customer.subscription.deleted"
    account = repository.account_for_subscription(session, subscription.id, lock=True)
    if account is None and "user_id" in subscription.metadata and subscription.status in LINKABLE and not deleted:
        # (a late event about an older subscription must not take over a live one)
        account = _claim(session, event, subscription.id, subscription.metadata, subscription.customer,
                         replace_live=False)
    if account is None:
        log.info("Stripe subscription %s is linked to no account; %s ignored", subscription.id, event.type)
        return
    if not _newest(account, event):
        return
    status = "canceled" if deleted else subscription.status
    if status == entitlements.PAST_DUE:
        _past_due(account)
    else:
        account.plan_status, account.grace_until = status, None
    account.cancel_at_period_end = subscription.cancel_at_period_end and not deleted
    account.current_period_end = _moment(subscription.period_end) or account.current_period_end
    changed_to = next((plan for plan in get_settings().plans if plan.stripe_price_id in subscription.price_ids), None)
    if changed_to is not None:
        account.plan_id = changed_to.id
    session.flush()
