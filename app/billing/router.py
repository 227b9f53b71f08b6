"""Billing routes: packs and plans, checkout, the customer portal, and Stripe's webhook (no
session: Stripe signs it)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from app.auth.dependencies import CurrentUser
from app.billing import entitlements, service, webhook
from app.billing.schemas import (
    CheckoutIn,
    CheckoutOut,
    PackOut,
    PacksOut,
    PlanOut,
    PlansOut,
    SubscribeIn,
    WebhookOut,
)
from app.db import SessionDep
from app.openapi import errors

router = APIRouter(prefix="/api/v1/billing", tags=["billing"])


@router.get("/packs")
def list_packs(user: CurrentUser) -> PacksOut:
    return PacksOut(
        packs=[PackOut.model_validate(pack, from_attributes=True) for pack in service.packs()],
        payments_enabled=service.payments_enabled(),
    )


@router.post("/checkout", responses=errors(502, 503))
def checkout(body: CheckoutIn, user: CurrentUser) -> CheckoutOut:
    """A Stripe Checkout page for one credit pack."""
    return CheckoutOut(url=service.start_checkout(user, body.pack))


@router.get("/plans")
def list_plans(user: CurrentUser, session: SessionDep) -> PlansOut:
    """The subscription plans on sale; `current` is the caller's plan in good standing or "free"."""
    plan = entitlements.of(session, user.id).plan
    return PlansOut(
        plans=[PlanOut.model_validate(plan, from_attributes=True) for plan in service.plans()],
        payments_enabled=service.payments_enabled(),
        current=plan.id if plan else "free",
    )


@router.post("/subscribe", responses=errors(409, 502, 503))
def subscribe(body: SubscribeIn, user: CurrentUser, session: SessionDep) -> CheckoutOut:
    """A Stripe Checkout page in subscription mode for one plan; 409 `already_subscribed`
    while the caller has a plan in good standing (change it in the portal)."""
    return CheckoutOut(url=service.start_subscription(session, user, body.plan))


@router.post("/portal", responses=errors(502, 503))
def portal(user: CurrentUser, session: SessionDep) -> CheckoutOut:
    """Stripe's customer portal for the caller: invoices, payment method, plan changes, cancel."""
    return CheckoutOut(url=service.portal_url(session, user))


async def _raw_body(request: Request) -> bytes:
    # The signature covers the exact bytes; they are read here, on the event loop, so the
    # handler itself can be a plain function run in the thread pool (it waits on the
    # database, e.g. for a racing delivery of the same event).
    return await request.body()


@router.post("/stripe-webhook", responses=errors(400, 413, 503))
def stripe_webhook(request: Request, payload: Annotated[bytes, Depends(_raw_body)], session: SessionDep) -> WebhookOut:
    """Stripe's signed events. 400 for a bad signature or a malformed event, and for a paid
    event that cannot be fulfilled (it is then not recorded, so Stripe retries it)."""
    result = webhook.handle_webhook(session, payload, request.headers.get("stripe-signature"))
    return WebhookOut(duplicate=result.duplicate)
