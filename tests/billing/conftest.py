"""Stripe without the network: a local stand-in for its API and genuinely signed events."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import pytest

# The credit tests' gate fixtures, so each money change here runs on every gate the backend has.
from tests.credits.conftest import gate, gate_kinds, use_gate  # noqa: F401

WEBHOOK_SECRET = "whsec_test_secret_for_signatures"
WEBHOOK = "/api/v1/billing/stripe-webhook"
PLANS = json.dumps([
    {"id": "pro", "name": "Pro", "price_cents": 1200, "credits": 1000, "max_active_jobs": 8, "priority": 2},
    {"id": "max", "name": "Max", "price_cents": 3000, "credits": 3000, "max_active_jobs": 16, "priority": 3,
     "stripe_price_id": "price_max_monthly"},
])


class StripeStandIn:
    """Answers the three API calls the client makes, as Stripe does, and remembers them:
    POST /v1/customers (honouring Idempotency-Key), /v1/checkout/sessions and
    /v1/billing_portal/sessions."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.customers_by_key: dict[str, str] = {}
        self._lock = threading.Lock()
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0))).decode()
                request = {"path": self.path, "auth": self.headers.get("authorization"), "form": parse_qs(body),
                           "idempotency_key": self.headers.get("idempotency-key")}
                data = json.dumps(stand_in.answer(request)).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, request: dict) -> dict:
        with self._lock:
            self.requests.append(request)
            number = len([seen for seen in self.requests if seen["path"] == request["path"]])
            if request["path"] == "/v1/customers":
                key = request["idempotency_key"] or f"none-{number}"
                customer = self.customers_by_key.setdefault(key, f"cus_test_{len(self.customers_by_key) + 1}")
                return {"id": customer, "object": "customer"}
            if request["path"] == "/v1/billing_portal/sessions":
                return {"id": f"bps_test_{number}", "object": "billing_portal.session",
                        "url": f"https://billing.stripe.test/p/session/bps_test_{number}"}
            return {"id": f"cs_test_{number}", "object": "checkout.session",
                    "url": f"https://checkout.stripe.test/c/pay/cs_test_{number}"}

    def forms(self, path: str) -> list[dict[str, str]]:
        return [{key: values[0] for key, values in seen["form"].items()} for seen in self.requests if seen["path"] == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stripe_api():
    stand_in = StripeStandIn()
    yield stand_in
    stand_in.close()


@pytest.fixture
def payments(env_override, stripe_api):
    env_override(STRIPE_SECRET_KEY="sk_test_123", STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET, STRIPE_API_BASE=stripe_api.url,
                 PLANS=PLANS)
    return stripe_api


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Money changes go through the credit gate: each of them runs against every gate the
    # backend has (the database gate; and the Redis gate on the real backend).
    if "gate_kind" in metafunc.fixturenames:
        import os

        metafunc.parametrize("gate_kind", gate_kinds(os.environ.get("IMAGEBOOTH_TEST_BACKEND", "embedded")))


# --- signed events --------------------------------------------------------------------------
def sign(payload: bytes, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    """The Stripe-Signature header, computed as Stripe does: HMAC-SHA256 over `t.payload`."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    signed = f"{timestamp}.".encode() + payload
    return f"t={timestamp},v1={hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()}"


def deliver(client, payload: bytes, signature: str | None = None):
    headers = {"content-type": "application/json", "stripe-signature": signature or sign(payload)}
    return client.post(WEBHOOK, content=payload, headers=headers)


def event(event_id: str, event_type: str, data_object: Any, created: int | None = None) -> bytes:
    return json.dumps({
        "id": event_id, "object": "event", "type": event_type, "api_version": "2025-03-31.basil",
        "created": int(time.time()) if created is None else created, "livemode": False,
        "data": {"object": data_object},
    }).encode()


def checkout_event(
    event_id: str, user_id: str, checkout_id: str = "cs_test_1", credits: int = 100,
    event_type: str = "checkout.session.completed", payment_status: str = "paid", payment_intent: str = "pi_test_1",
) -> bytes:
    return event(event_id, event_type, {
        "id": checkout_id, "object": "checkout.session", "mode": "payment",
        "payment_status": payment_status, "client_reference_id": user_id, "payment_intent": payment_intent,
        "amount_total": 500, "currency": "usd",
        "metadata": {"user_id": user_id, "pack": "starter", "credits": str(credits)},
    })


def subscription_checkout_event(event_id: str, user_id: str, subscription: str = "sub_1", plan: str = "pro",
                                customer: str = "cus_test_1") -> bytes:
    return event(event_id, "checkout.session.completed", {
        "id": f"cs_{subscription}", "object": "checkout.session", "mode": "subscription", "payment_status": "paid",
        "client_reference_id": user_id, "customer": customer, "subscription": subscription,
        "metadata": {"user_id": user_id, "plan": plan},
    })


def invoice_event(
    event_id: str, user_id: str, invoice_id: str = "in_1", subscription: str = "sub_1", plan: str = "pro",
    event_type: str = "invoice.paid", period_end: int | None = None, layout: str = "2025",
    created: int | None = None,
) -> bytes:
    """An invoice of a subscription, in the 2025 ("basil") shape, where the subscription and
    its metadata sit under parent.subscription_details, or the older one (`layout="2024"`)."""
    end = period_end or int(time.time()) + 30 * 86400
    details = {"metadata": {"user_id": user_id, "plan": plan}}
    invoice: dict[str, Any] = {
        "id": invoice_id, "object": "invoice", "customer": "cus_test_1", "status": "paid",
        "lines": {"object": "list", "data": [{"period": {"start": end - 30 * 86400, "end": end}}]},
        "period_end": end - 30 * 86400,
    }
    if layout == "2025":
        invoice["parent"] = {"type": "subscription_details", "subscription_details": {**details, "subscription": subscription}}
    else:
        invoice.update(subscription=subscription, subscription_details=details)
    return event(event_id, event_type, invoice, created)


def subscription_event(
    event_id: str, user_id: str, event_type: str = "customer.subscription.updated", subscription: str = "sub_1",
    status: str = "active", plan: str = "pro", price: str = "price_pro", cancel_at_period_end: bool = False,
    period_end: int | None = None, created: int | None = None,
) -> bytes:
    end = period_end or int(time.time()) + 30 * 86400
    return event(event_id, event_type, {
        "id": subscription, "object": "subscription", "status": status, "customer": "cus_test_1",
        "cancel_at_period_end": cancel_at_period_end, "metadata": {"user_id": user_id, "plan": plan},
        "items": {"object": "list", "data": [{"price": {"id": price}, "current_period_end": end}]},
    }, created)


def refund_event(event_id: str, amount_refunded: int, payment_intent: str = "pi_test_1", charge: str = "ch_1",
                 amount: int = 500) -> bytes:
    return event(event_id, "charge.refunded", {
        "id": charge, "object": "charge", "payment_intent": payment_intent, "amount": amount,
        "amount_refunded": amount_refunded, "refunded": amount_refunded >= amount,
    })


def dispute_event(event_id: str, amount: int = 500, payment_intent: str = "pi_test_1", dispute: str = "dp_1") -> bytes:
    return event(event_id, "charge.dispute.created", {
        "id": dispute, "object": "dispute", "charge": "ch_1", "payment_intent": payment_intent, "amount": amount,
        "reason": "fraudulent", "status": "needs_response",
    })


@pytest.fixture
def subscribed(client, accounts, payments) -> Iterator[dict]:
    """A signed-up user whose Pro subscription sub_1 Stripe has confirmed (checkout + first invoice)."""
    me = accounts.signup(client)
    assert deliver(client, subscription_checkout_event("evt_sub_checkout", me["id"])).status_code == 200
    assert deliver(client, invoice_event("evt_sub_invoice_1", me["id"])).status_code == 200
    yield me
