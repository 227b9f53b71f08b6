"""The one place that talks to Stripe's API: customers, Checkout Sessions, portal sessions.

`api_base` points the client elsewhere (a local stand-in in tests, stripe-mock in CI).
Nothing here reads objects back: fulfilment comes from the signed events alone, so what
fulfilment needs travels in the metadata set here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.config import CreditPack, Plan

STRIPE_TIMEOUT_S = 10


@dataclass(frozen=True)
class CheckoutSession:
    id: str
    url: str


@dataclass(frozen=True)
class Returns:
    """Where Stripe sends the customer back."""

    success_url: str
    cancel_url: str


class CheckoutClient:
    def __init__(self, api_key: str, api_base: str | None = None) -> None:
        import stripe  # only when a purchase starts: the package is slow to import

        options = {"base_addresses": {"api": api_base.rstrip("/")}} if api_base else {}
        self._client = stripe.StripeClient(
            api_key, max_network_retries=1, http_client=stripe.RequestsClient(timeout=STRIPE_TIMEOUT_S), **options
        )

    def create_checkout(self, pack: CreditPack, user_id: str, returns: Returns) -> CheckoutSession:
        params = {
            "mode": "payment",
            "line_items": [{
                "quantity": 1,
                "price_data": {
                    "currency": pack.currency,
                    "unit_amount": pack.price_cents,
                    "product_data": {"name": pack.name},
                },
            }],
            "client_reference_id": user_id,
            # What to credit travels with the session and comes back, signed, in the event.
            "metadata": {"user_id": user_id, "pack": pack.id, "credits": str(pack.credits)},
            "success_url": returns.success_url,
            "cancel_url": returns.cancel_url,
        }
        session = self._client.v1.checkout.sessions.create(params=params)
        return CheckoutSession(id=session.id, url=session.url)

    def create_customer(self, user_id: str, email: str) -> str:
        # The idempotency key makes two racing first purchases of one user create one customer.
        customer = self._client.v1.customers.create(
            params={"email": email, "metadata": {"user_id": user_id}},
            options={"idempotency_key": f"imagebooth-customer-{user_id}"},
        )
        return str(customer.id)

    def create_subscription_checkout(self, plan: Plan, user_id: str, customer_id: str, returns: Returns) -> CheckoutSession:
        metadata = {"user_id": user_id, "plan": plan.id}
        params: dict[str, Any] = {
            "mode": "subscription",
            "customer": customer_id,
            "line_items": [{"quantity": 1, **_plan_price(plan)}],
            "client_reference_id": user_id,
            "metadata": metadata,
            # Stripe copies the subscription's metadata onto each of its invoices, so every
            # invoice event names the user and the plan by itself.
            "subscription_data": {"metadata": metadata},
            "success_url": returns.success_url,
            "cancel_url": returns.cancel_url,
        }
        session = self._client.v1.checkout.sessions.create(params=params)
        return CheckoutSession(id=session.id, url=session.url)

    def create_portal_session(self, customer_id: str, return_url: str) -> str:
        session = self._client.v1.billing_portal.sessions.create(
            params={"customer": customer_id, "return_url": return_url}
        )
        return str(session.url)


def _plan_price(plan: Plan) -> dict[str, Any]:
    if plan.stripe_price_id:
        return {"price": plan.stripe_price_id}
    return {"price_data": {
        "currency": plan.currency,
        "unit_amount": plan.price_cents,
        "recurring": {"interval": plan.interval},
        "product_data": {"name": plan.name},
    }}
