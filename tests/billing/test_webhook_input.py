"""Signed but hostile or broken Stripe events: a clear 400 (or a 200 for what is ignored),
never a 500; paid events that cannot be fulfilled stay retryable and raise an alert."""

from __future__ import annotations

import json
import logging
import time

import pytest
from sqlalchemy import func, select

from app.billing.models import StripeEvent
from tests.billing.conftest import PLANS, checkout_event, deliver, event, invoice_event, refund_event, sign


def events_recorded(db) -> int:
    return db.scalar(select(func.count()).select_from(StripeEvent))


def balance(client) -> int:
    return client.get("/api/v1/me").json()["credits"]["balance"]


def _paid_checkout(user_id: str, **changes) -> dict:
    body = json.loads(checkout_event("evt_bad", user_id))
    body["data"]["object"].update(changes)
    return body


# Each: a name, and the event as a function of the user id. All are genuinely signed.
MALFORMED = {
    "no data": lambda uid: {"id": "evt_bad", "type": "checkout.session.completed", "created": 1},
    "data is a list": lambda uid: {"id": "evt_bad", "type": "invoice.paid", "created": 1, "data": []},
    "object is a string": lambda uid: {"id": "evt_bad", "type": "charge.refunded", "created": 1, "data": {"object": "x"}},
    "no event id": lambda uid: {"type": "checkout.session.completed", "created": 1, "data": {"object": {}}},
    "event id is a number": lambda uid: {"id": 5, "type": "x.y", "created": 1, "data": {"object": {}}},
    "event id with a NUL": lambda uid: {"id": "evt_\u0000", "type": "x.y", "created": 1, "data": {"object": {}}},
    "event id of 10k characters": lambda uid: {"id": "e" * 10_000, "type": "x.y", "created": 1, "data": {"object": {}}},
    "created is text": lambda uid: {"id": "evt_bad", "type": "x.y", "created": "yesterday", "data": {"object": {}}},
    "created is 2**70": lambda uid: {"id": "evt_bad", "type": "x.y", "created": 2**70, "data": {"object": {}}},
    "the body is a list": lambda uid: [1, 2, 3],
    "metadata is a list": lambda uid: _paid_checkout(uid, metadata=["user_id", uid]),
    "metadata value is a number": lambda uid: _paid_checkout(uid, metadata={"user_id": uid, "credits": 100}),
    "metadata value with a NUL": lambda uid: _paid_checkout(uid, metadata={"user_id": uid, "credits": "5", "pack": "a\u0000b"}),
    "payment_status is a number": lambda uid: _paid_checkout(uid, payment_status=1),
    "checkout id is missing": lambda uid: {**_paid_checkout(uid), "data": {"object": {"mode": "payment"}}},
    "amount_total is 2**40": lambda uid: _paid_checkout(uid, amount_total=2**40),
    "payment intent is an object": lambda uid: _paid_checkout(uid, payment_intent={"id": "pi_1"}),
    "refund amount is text": lambda uid: json.loads(refund_event("evt_bad", 500).replace(b'"amount_refunded": 500', b'"amount_refunded": "500"')),
    "refund amount is negative": lambda uid: json.loads(refund_event("evt_bad", -5)),
    "invoice lines are a string": lambda uid: {**json.loads(invoice_event("evt_bad", uid)), "data": {"object": {"id": "in_1", "lines": "x"}}},
    "subscription status has a NUL": lambda uid: json.loads(event("evt_bad", "customer.subscription.updated", {"id": "sub_1", "status": "act\u0000ive"})),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_a_signed_malformed_event_is_400_and_recorded_nowhere(name, client, accounts, payments, db) -> None:
    user = accounts.signup(client)
    payload = json.dumps(MALFORMED[name](user["id"])).encode()
    response = deliver(client, payload)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "invalid_payload"
    assert events_recorded(db) == 0 and balance(client) == 0


@pytest.mark.parametrize("body", [b"\xff\xfe not utf-8", b"{not json", b"[" * 100_000 + b"]" * 100_000, b""])
def test_a_signed_body_that_is_not_json_is_400(body, client, payments, db) -> None:
    response = deliver(client, body)
    assert response.status_code == 400 and response.json()["error"]["code"] in ("invalid_payload", "invalid_signature")
    assert events_recorded(db) == 0


def test_a_timestamp_beyond_a_small_future_skew_is_refused(client, accounts, payments, db) -> None:
    user = accounts.signup(client)
    payload = checkout_event("evt_future", user["id"])
    refused = deliver(client, payload, sign(payload, timestamp=int(time.time()) + 3600))
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid_signature"
    assert events_recorded(db) == 0
    # a clock a few seconds ahead is normal
    assert deliver(client, payload, sign(payload, timestamp=int(time.time()) + 20)).status_code == 200
    assert balance(client) == 100


@pytest.mark.parametrize("credits", [str(2**40), "-100", "0", "lots", "1e3", " 100", "１００"])
def test_a_paid_checkout_with_bad_credits_stays_retryable_and_alerts(credits, client, accounts, payments, db, caplog) -> None:
    user = accounts.signup(client)
    payload = json.dumps(_paid_checkout(user["id"], metadata={"user_id": user["id"], "credits": credits})).encode()
    with caplog.at_level(logging.ERROR, logger="imagebooth.alerts"):
        response = deliver(client, payload)
    assert response.status_code == 400 and response.json()["error"]["code"] == "unfulfillable_event"
    assert events_recorded(db) == 0 and balance(client) == 0  # not handled: Stripe's retry comes back
    assert any("ALERT billing" in record.getMessage() and "evt_bad" in record.getMessage() for record in caplog.records)


def test_a_malformed_paid_event_alerts(client, accounts, payments, db, caplog) -> None:
    user = accounts.signup(client)
    payload = json.dumps(MALFORMED["metadata value with a NUL"](user["id"])).encode()
    with caplog.at_level(logging.ERROR, logger="imagebooth.alerts"):
        assert deliver(client, payload).status_code == 400
    assert events_recorded(db) == 0
    assert any("ALERT billing" in record.getMessage() and "evt_bad" in record.getMessage() for record in caplog.records)


def test_a_paid_checkout_for_an_unknown_user_stays_retryable_and_alerts(client, accounts, payments, db, caplog) -> None:
    accounts.signup(client)
    with caplog.at_level(logging.ERROR, logger="imagebooth.alerts"):
        response = deliver(client, checkout_event("evt_nobody", "0" * 32))
    assert response.status_code == 400 and response.json()["error"]["code"] == "unfulfillable_event"
    assert events_recorded(db) == 0
    assert any("ALERT billing" in record.getMessage() and "evt_nobody" in record.getMessage() for record in caplog.records)


def test_an_invoice_for_an_unconfigured_plan_is_retried_until_the_plan_exists(
    client, accounts, payments, db, env_override, caplog
) -> None:
    user = accounts.signup(client)
    payload = invoice_event("evt_gold", user["id"], plan="gold")
    with caplog.at_level(logging.ERROR, logger="imagebooth.alerts"):
        assert deliver(client, payload).status_code == 400
    assert events_recorded(db) == 0 and any("gold" in record.getMessage() for record in caplog.records)
    # the operator adds the plan; Stripe's next retry of the same event is fulfilled
    gold = {"id": "gold", "name": "Gold", "price_cents": 5000, "credits": 7000, "max_active_jobs": 8}
    env_override(PLANS=json.dumps([*json.loads(PLANS), gold]))
    assert deliver(client, payload).status_code == 200
    assert balance(client) == 7000


def test_an_unhandled_event_type_with_any_object_is_recorded_and_ignored(client, payments, db) -> None:
    payload = event("evt_misc", "customer.created", {"anything": [1, {"goes": None}], "metadata": ["x"]})
    assert deliver(client, payload).status_code == 200 and events_recorded(db) == 1
