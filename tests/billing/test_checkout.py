"""Packs and Checkout Sessions through the Stripe client (pointed at a local stand-in)."""

from __future__ import annotations


def test_packs_come_from_settings(client, accounts, env_override) -> None:
    accounts.signup(client)
    body = client.get("/api/v1/billing/packs").json()
    assert [pack["id"] for pack in body["packs"]] == ["starter", "studio"] and body["payments_enabled"] is False
    env_override(CREDIT_PACKS='[{"id": "tiny", "name": "10 credits", "credits": 10, "price_cents": 100}]')
    assert client.get("/api/v1/billing/packs").json()["packs"] == [
        {"id": "tiny", "name": "10 credits", "credits": 10, "price_cents": 100, "currency": "usd"}
    ]


def test_packs_need_authentication(client) -> None:
    assert client.get("/api/v1/billing/packs").status_code == 401


def test_checkout_without_stripe_keys_is_503(client, accounts) -> None:
    accounts.signup(client)
    response = client.post("/api/v1/billing/checkout", json={"pack": "starter"}, headers=accounts.csrf(client))
    assert response.status_code == 503 and response.json()["error"]["code"] == "payments_disabled"


def test_checkout_creates_a_stripe_session_and_returns_its_url(client, accounts, payments) -> None:
    me = accounts.signup(client)
    response = client.post("/api/v1/billing/checkout", json={"pack": "studio"}, headers=accounts.csrf(client))
    assert response.status_code == 200, response.text
    assert response.json() == {"url": "https://checkout.stripe.test/c/pay/cs_test_1"}
    (sent,) = payments.requests
    form = {key: values[0] for key, values in sent["form"].items()}
    assert sent["path"] == "/v1/checkout/sessions" and sent["auth"] == "Bearer sk_test_123"
    assert form["mode"] == "payment" and form["client_reference_id"] == me["id"]
    assert form["line_items[0][price_data][unit_amount]"] == "2000"
    assert form["metadata[credits]"] == "500" and form["metadata[user_id]"] == me["id"]


def test_checkout_of_an_unknown_pack_is_422(client, accounts, payments) -> None:
    accounts.signup(client)
    response = client.post("/api/v1/billing/checkout", json={"pack": "gold"}, headers=accounts.csrf(client))
    assert response.status_code == 422 and "starter" in response.json()["error"]["message"]
    assert payments.requests == []


def test_checkout_when_stripe_is_unreachable_is_502(client, accounts, env_override) -> None:
    accounts.signup(client)
    env_override(STRIPE_SECRET_KEY="sk_test_123", STRIPE_WEBHOOK_SECRET="whsec_x", STRIPE_API_BASE="http://127.0.0.1:9")
    response = client.post("/api/v1/billing/checkout", json={"pack": "starter"}, headers=accounts.csrf(client))
    assert response.status_code == 502 and response.json()["error"]["code"] == "payment_provider_error"
