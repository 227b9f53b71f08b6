"""The one place that talks to Stripe's API: creating Checkout Sessions.

`api_base` points the client elsewhere (a local stand-in in tests, stripe-mock in CI).
"""

from __future__ import annotations

from dataclasses import dataclass

from app.config import CreditPack

STRIPE_TIMEOUT_S = 10


@dataclass(frozen=True)
class CheckoutSession:
    id: str
    url: str


class CheckoutClient:
    def __init__(self, api_key: str, api_base: str | None = None) -> None:
        import stripe  # only when a purchase starts: the package is slow to import

        options = {"base_addresses": {"api": api_base.rstrip("/")}} if api_base else {}
        self._client = stripe.StripeClient(
            api_key, max_network_retries=1, http_client=stripe.RequestsClient(timeout=STRIPE_TIMEOUT_S), **options
        )

    def create_checkout(
        self, pack: CreditPack, user_id: str, success_url: str, cancel_url: str
    ) -> CheckoutSession:
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
            "success_url": success_url,
            "cancel_url": cancel_url,
        }
        session = self._client.v1.checkout.sessions.create(params=params)
        return CheckoutSession(id=session.id, url=session.url)
