"""Packs, plans, Checkout Sessions and the customer portal through the Stripe client
(pointed at a local stand-in)."""

from __future__ import annotations

import threading

from tests.billing.conftest import deliver, subscription_checkout_event


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
    (form,) = payments.forms("/v1/checkout/sessions")
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


# --- plans -------------------------------------------------------------------------------------
def test_plans_come_from_settings(client, accounts, env_override) -> None:
    accounts.signup(client)
    body = client.get("/api/v1/billing/plans").json()
    assert body["current"] == "free" and body["payments_enabled"] is False
    assert [(plan["id"], plan["interval"], plan["credits"]) for plan in body["plans"]] == [("pro", "month", 1000)]
    env_override(PLANS='[{"id": "lite", "name": "Lite", "price_cents": 300, "credits": 200, "max_active_jobs": 2, '
                       '"interval": "year"}]')
    assert client.get("/api/v1/billing/plans").json()["plans"] == [{
        "id": "lite", "name": "Lite", "price_cents": 300, "currency": "usd", "interval": "year", "credits": 200,
        "max_active_jobs": 2, "priority": 2,
    }]


def test_subscribe_opens_checkout_in_subscription_mode_with_the_user_and_plan_in_metadata(client, accounts, payments) -> None:
    me = accounts.signup(client)
    response = client.post("/api/v1/billing/subscribe", json={"plan": "pro"}, headers=accounts.csrf(client))
    assert response.status_code == 200, response.text
    assert response.json() == {"url": "https://checkout.stripe.test/c/pay/cs_test_1"}
    (customer,) = payments.forms("/v1/customers")
    assert customer["metadata[user_id]"] == me["id"] and customer["email"] == me["email"]
    (form,) = payments.forms("/v1/checkout/sessions")
    assert form["mode"] == "subscription" and form["customer"] == "cus_test_1"
    assert form["line_items[0][price_data][recurring][interval]"] == "month"
    assert form["line_items[0][price_data][unit_amount]"] == "1200"
    # the subscription carries who and what, so every invoice event names them by itself
    assert form["subscription_data[metadata][user_id]"] == me["id"] and form["subscription_data[metadata][plan]"] == "pro"
    assert form["metadata[plan]"] == "pro"


def test_a_plan_with_a_stripe_price_uses_it(client, accounts, payments) -> None:
    accounts.signup(client)
    client.post("/api/v1/billing/subscribe", json={"plan": "max"}, headers=accounts.csrf(client))
    (form,) = payments.forms("/v1/checkout/sessions")
    assert form["line_items[0][price]"] == "price_max_monthly" and "line_items[0][price_data][currency]" not in form


def test_the_stripe_customer_is_created_once_and_remembered(client, accounts, payments) -> None:
    accounts.signup(client)
    for path, body in (("/api/v1/billing/subscribe", {"plan": "pro"}), ("/api/v1/billing/portal", None),
                       ("/api/v1/billing/portal", None)):
        assert client.post(path, json=body, headers=accounts.csrf(client)).status_code == 200
    assert len(payments.forms("/v1/customers")) == 1
    portals = payments.forms("/v1/billing_portal/sessions")
    assert [portal["customer"] for portal in portals] == ["cus_test_1", "cus_test_1"]
    assert portals[0]["return_url"].endswith("/credits")


def test_racing_first_requests_make_one_customer(client, accounts, payments, db) -> None:
    from app.billing.models import BillingAccount

    me = accounts.signup(client)
    start = threading.Barrier(4)
    answers = []

    def post() -> None:
        start.wait()
        answers.append(client.post("/api/v1/billing/portal", headers=accounts.csrf(client)))

    threads = [threading.Thread(target=post) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [answer.status_code for answer in answers] == [200] * 4
    # Stripe saw one idempotency key, so it made one customer; the account remembers it
    assert {request["idempotency_key"] for request in payments.requests if request["path"] == "/v1/customers"} == {
        f"imagebooth-customer-{me['id']}"}
    assert db.get(BillingAccount, me["id"]).stripe_customer_id == "cus_test_1"


def test_portal_returns_its_url(client, accounts, payments) -> None:
    accounts.signup(client)
    response = client.post("/api/v1/billing/portal", headers=accounts.csrf(client))
    assert response.status_code == 200 and response.json() == {"url": "https://billing.stripe.test/p/session/bps_test_1"}


def test_subscribing_again_while_subscribed_is_409(client, accounts, payments) -> None:
    me = accounts.signup(client)
    deliver(client, subscription_checkout_event("evt_1", me["id"]))
    response = client.post("/api/v1/billing/subscribe", json={"plan": "max"}, headers=accounts.csrf(client))
    assert response.status_code == 409 and response.json()["error"]["code"] == "already_subscribed"
    assert payments.forms("/v1/checkout/sessions") == []


def test_subscribe_to_an_unknown_plan_is_422_and_without_keys_503(client, accounts, payments, env_override) -> None:
    accounts.signup(client)
    unknown = client.post("/api/v1/billing/subscribe", json={"plan": "gold"}, headers=accounts.csrf(client))
    assert unknown.status_code == 422 and "pro" in unknown.json()["error"]["message"]
    env_override(STRIPE_SECRET_KEY="")
    for path, body in (("/api/v1/billing/subscribe", {"plan": "pro"}), ("/api/v1/billing/portal", None)):
        response = client.post(path, json=body, headers=accounts.csrf(client))
        assert response.status_code == 503 and response.json()["error"]["code"] == "payments_disabled"
    assert payments.requests == []


def test_billing_routes_need_authentication(client) -> None:
    assert client.get("/api/v1/billing/plans").status_code == 401
    assert client.post("/api/v1/billing/subscribe", json={"plan": "pro"}).status_code == 401
    assert client.post("/api/v1/billing/portal").status_code == 401
