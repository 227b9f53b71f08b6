"""Selling credits and plans: packs and plans on sale, Checkout Sessions, the customer portal,
and the caller's subscription as the signed events left it.

What Stripe then reports (payments, renewals, failures, refunds) arrives through the signed
webhook: app/billing/webhook.py.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.orm import Session

from app.auth.models import User
from app.billing import entitlements, repository
from app.billing.entitlements import Entitlements
from app.billing.models import BillingAccount
from app.billing.schemas import SubscriptionOut
from app.billing.stripe_client import CheckoutClient, Returns
from app.config import CreditPack, Plan, Settings, get_settings
from app.errors import AppError
from app.model_base import utcnow

log = logging.getLogger(__name__)
Result = TypeVar("Result")


def payments_enabled(settings: Settings | None = None) -> bool:
    settings = settings or get_settings()
    return settings.stripe_secret_key is not None and settings.stripe_webhook_secret is not None


def payments_disabled() -> AppError:
    return AppError("payments_disabled", "Payments are not enabled on this server.", 503)


def packs() -> list[CreditPack]:
    return list(get_settings().credit_packs)


def plans() -> list[Plan]:
    return list(get_settings().plans)


def _client(settings: Settings) -> CheckoutClient:
    if not payments_enabled(settings):
        raise payments_disabled()
    assert settings.stripe_secret_key is not None
    return CheckoutClient(settings.stripe_secret_key.get_secret_value(), settings.stripe_api_base)


def _returns(settings: Settings) -> Returns:
    base = settings.public_url.rstrip("/")
    return Returns(f"{base}/?purchase=success", f"{base}/?purchase=canceled")


def _calling_stripe(call: Callable[[], Result]) -> Result:
    import stripe  # here, not at the top: the stripe package costs the web process's start-up ~0.2 s

    try:
        return call()
    except stripe.StripeError as failure:
        log.error("Stripe API call failed: %s", failure)
        raise AppError("payment_provider_error", "The payment provider did not answer; try again.", 502) from failure


def _unknown(kind: str, wanted: str, known: list[str]) -> AppError:
    return AppError("validation_error", f"{kind}: unknown {kind} {wanted!r} (one of: {', '.join(known)})", 422)


def start_checkout(user: User, pack_id: str) -> str:
    """A Stripe Checkout page for one pack; returns its URL."""
    settings = get_settings()
    client = _client(settings)
    pack = next((pack for pack in settings.credit_packs if pack.id == pack_id), None)
    if pack is None:
        raise _unknown("pack", pack_id, [pack.id for pack in settings.credit_packs])
    return _calling_stripe(lambda: client.create_checkout(pack, user.id, _returns(settings))).url


def start_subscription(session: Session, user: User, plan_id: str) -> str:
    """A Stripe Checkout page (subscription mode) for one plan; returns its URL. 409 while
    the caller has a plan in good standing: changes go through the portal."""
    settings = get_settings()
    client = _client(settings)
    plan = entitlements.plan_by_id(plan_id)
    if plan is None:
        raise _unknown("plan", plan_id, [plan.id for plan in settings.plans])
    current = entitlements.plan_in_good_standing(repository.account_of(session, user.id), utcnow())
    if current is not None:
        raise AppError("already_subscribed", f"You already have the {current.name} plan; change or cancel it "
                       "under Manage billing.", 409, plan=current.id)
    customer = ensure_customer(session, user, client)
    checkout = _calling_stripe(lambda: client.create_subscription_checkout(plan, user.id, customer, _returns(settings)))
    return checkout.url


def portal_url(session: Session, user: User) -> str:
    """Stripe's customer portal for the caller (invoices, payment method, plan changes)."""
    settings = get_settings()
    client = _client(settings)
    customer = ensure_customer(session, user, client)
    return_url = settings.public_url.rstrip("/") + "/credits"
    return _calling_stripe(lambda: client.create_portal_session(customer, return_url))


def ensure_customer(session: Session, user: User, client: CheckoutClient) -> str:
    """The user's Stripe customer, created on first use and remembered."""
    account = repository.ensure_account(session, user.id)
    if account.stripe_customer_id:
        return account.stripe_customer_id
    created = _calling_stripe(lambda: client.create_customer(user.id, user.email))
    return repository.set_customer_once(session, user.id, created)


# --- the caller's plan ------------------------------------------------------------------------
def standing(session: Session, user: User) -> tuple[Entitlements, SubscriptionOut | None]:
    """The account's entitlements and its subscription (None before the first)."""
    now = utcnow()
    rights = entitlements.of(session, user.id, now)
    account = repository.account_of(session, user.id)
    return rights, (_subscription_view(account, rights) if account and account.plan_id else None)


def _subscription_view(account: BillingAccount, rights: Entitlements) -> SubscriptionOut:
    plan = entitlements.plan_by_id(account.plan_id)
    ending = account.cancel_at_period_end or account.plan_status not in entitlements.GOOD_STANDING
    return SubscriptionOut(
        plan=account.plan_id or "",
        name=plan.name if plan else None,
        status=account.plan_status or "incomplete",
        in_good_standing=rights.plan is not None and rights.plan.id == account.plan_id,
        renews_at=None if ending else account.current_period_end,
        ends_at=account.current_period_end if account.cancel_at_period_end else None,
        grace_until=account.grace_until if account.plan_status == entitlements.PAST_DUE else None,
    )
