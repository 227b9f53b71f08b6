"""The Stripe webhook: genuine signatures, exactly-once crediting, nothing changed on rejects."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import func, select

from app.billing.models import StripeEvent
from tests.billing.conftest import WEBHOOK, checkout_event, deliver, sign


def paid_balance(client) -> int:
    return client.get("/api/v1/me").json()["credits"]["balance"]


def events_recorded(db) -> int:
    return db.scalar(select(func.count()).select_from(StripeEvent))


@pytest.mark.usefixtures("gate")
def test_paid_checkout_credits_the_pack_and_makes_the_user_premium(client, accounts, payments) -> None:
    me = accounts.signup(client)
    response = deliver(client, checkout_event("evt_1", me["id"]))
    assert response.status_code == 200 and response.json() == {"received": True, "duplicate": False}
    assert paid_balance(client) == 100
    assert client.get("/api/v1/me").json()["tier"] == "premium"
    ledger = client.get("/api/v1/credits/ledger").json()["items"]
    assert [(entry["reason"], entry["amount"], entry["reference"]) for entry in ledger] == [
        ("purchase", 100, "stripe:cs_test_1")
    ]


def test_replayed_three_times_credits_once(client, accounts, payments, db) -> None:
    me = accounts.signup(client)
    payload = checkout_event("evt_replay", me["id"])
    answers = [deliver(client, payload) for _ in range(3)]
    assert [answer.status_code for answer in answers] == [200, 200, 200]
    assert [answer.json()["duplicate"] for answer in answers] == [False, True, True]
    assert paid_balance(client) == 100 and events_recorded(db) == 1


def test_forged_signature_and_stale_timestamp_are_400_and_change_nothing(client, accounts, payments, db) -> None:
    me = accounts.signup(client)
    payload = checkout_event("evt_forged", me["id"])
    forged = deliver(client, payload, sign(payload, secret="whsec_someone_else"))
    stale = deliver(client, payload, sign(payload, timestamp=int(time.time()) - 3600))
    tampered = deliver(client, payload.replace(b'"100"', b'"100000"'), sign(payload))
    unsigned = client.post(WEBHOOK, content=payload, headers={"content-type": "application/json"})
    for response in (forged, stale, tampered, unsigned):
        assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_signature"
    assert paid_balance(client) == 0 and events_recorded(db) == 0
    assert deliver(client, payload).json()["duplicate"] is False  # the genuine one still works
    assert paid_balance(client) == 100


def test_async_payment_credits_when_it_succeeds_and_only_once_per_checkout(client, accounts, payments) -> None:
    me = accounts.signup(client)
    pending = checkout_event("evt_a", me["id"], checkout_id="cs_async", payment_status="unpaid")
    assert deliver(client, pending).status_code == 200
    assert paid_balance(client) == 0
    succeeded = checkout_event(
        "evt_b", me["id"], checkout_id="cs_async", event_type="checkout.session.async_payment_succeeded"
    )
    assert deliver(client, succeeded).status_code == 200
    # a different event about the same, already credited checkout
    again = checkout_event("evt_c", me["id"], checkout_id="cs_async")
    assert deliver(client, again).json()["duplicate"] is False
    assert paid_balance(client) == 100


@pytest.mark.usefixtures("gate")
def test_two_deliveries_racing_credit_once(client, accounts, payments, db) -> None:
    me = accounts.signup(client)
    payload = checkout_event("evt_race", me["id"])
    start = threading.Barrier(4)
    answers = []

    def post() -> None:
        start.wait()
        answers.append(deliver(client, payload))

    threads = [threading.Thread(target=post) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answer.status_code for answer in answers) == [200] * 4
    assert sorted(answer.json()["duplicate"] for answer in answers) == [False, True, True, True]
    assert paid_balance(client) == 100 and events_recorded(db) == 1


def test_other_events_are_recorded_and_ignored(client, accounts, payments, db) -> None:
    me = accounts.signup(client)
    payload = checkout_event("evt_other", me["id"], event_type="checkout.session.expired")
    assert deliver(client, payload).status_code == 200
    assert paid_balance(client) == 0 and events_recorded(db) == 1


def test_webhook_without_a_secret_configured_is_503(client, accounts) -> None:
    me = accounts.signup(client)
    response = deliver(client, checkout_event("evt_x", me["id"]))
    assert response.status_code == 503 and response.json()["error"]["code"] == "payments_disabled"
