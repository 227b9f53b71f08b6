"""Billing routes: packs, checkout, and Stripe's webhook (no session: Stripe signs it)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from app.auth.dependencies import CurrentUser
from app.billing import service
from app.billing.schemas import CheckoutIn, CheckoutOut, PackOut, PacksOut, WebhookOut
from app.db import SessionDep

router = APIRouter(prefix="/api/v1/billing", tags=["billing"])


@router.get("/packs")
def list_packs(user: CurrentUser) -> PacksOut:
    return PacksOut(
        packs=[PackOut.model_validate(pack, from_attributes=True) for pack in service.packs()],
        payments_enabled=service.payments_enabled(),
    )


@router.post("/checkout")
def checkout(body: CheckoutIn, user: CurrentUser) -> CheckoutOut:
    return CheckoutOut(url=service.start_checkout(user, body.pack))


async def _raw_body(request: Request) -> bytes:
    # The signature covers the exact bytes; they are read here, on the event loop, so the
    # handler itself can be a plain function run in the thread pool (it waits on the
    # database, e.g. for a racing delivery of the same event).
    return await request.body()


@router.post("/stripe-webhook")
def stripe_webhook(request: Request, payload: Annotated[bytes, Depends(_raw_body)], session: SessionDep) -> WebhookOut:
    result = service.handle_webhook(session, payload, request.headers.get("stripe-signature"))
    return WebhookOut(duplicate=result.duplicate)
