"""Stripe without the network: a local stand-in for its API and genuinely signed events."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import pytest

WEBHOOK_SECRET = "whsec_test_secret_for_signatures"


class StripeStandIn:
    """Answers POST /v1/checkout/sessions like Stripe does, and remembers the requests."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0))).decode()
                stand_in.requests.append(
                    {"path": self.path, "auth": self.headers.get("authorization"), "form": parse_qs(body)}
                )
                number = len(stand_in.requests)
                answer = {
                    "id": f"cs_test_{number}", "object": "checkout.session",
                    "url": f"https://checkout.stripe.test/c/pay/cs_test_{number}",
                }
                data = json.dumps(answer).encode()
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
    env_override(STRIPE_SECRET_KEY="sk_test_123", STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET, STRIPE_API_BASE=stripe_api.url)
    return stripe_api


def sign(payload: bytes, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    """The Stripe-Signature header, computed as Stripe does: HMAC-SHA256 over `t.payload`."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    signed = f"{timestamp}.".encode() + payload
    return f"t={timestamp},v1={hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()}"


def checkout_event(
    event_id: str, user_id: str, checkout_id: str = "cs_test_1", credits: int = 100,
    event_type: str = "checkout.session.completed", payment_status: str = "paid",
) -> bytes:
    event = {
        "id": event_id, "object": "event", "type": event_type, "api_version": "2025-01-01",
        "created": int(time.time()), "livemode": False,
        "data": {"object": {
            "id": checkout_id, "object": "checkout.session", "mode": "payment",
            "payment_status": payment_status, "client_reference_id": user_id,
            "metadata": {"user_id": user_id, "pack": "starter", "credits": str(credits)},
        }},
    }
    return json.dumps(event).encode()
