"""Delivering events: signed, retried with back-off, every attempt recorded, refusals kept.

The delivery loop's steps (`take_due`, `attempt`) are called here directly, against a real
local receiver; tests/webhooks/test_job_events.py runs them in a real worker.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest

from app.db import session_scope
from app.webhooks import delivery, events
from app.webhooks.models import DeliveryStatus, WebhookDelivery

JOB = {"id": "0" * 32, "status": "succeeded", "images": []}


@pytest.fixture
def hook(client, accounts, receiver):
    """A user with one endpoint at the local receiver: (user id, endpoint as created)."""
    user = accounts.signup(client)
    created = client.post("/api/v1/webhooks", json={"url": receiver.url}, headers=accounts.csrf(client))
    assert created.status_code == 201
    return user["id"], created.json()


def _queue_event(db, user_id: str, event_type: str = "generation.succeeded") -> str:
    assert events.record(db, user_id, event_type, JOB) == 1
    db.commit()
    return db.query(WebhookDelivery).one().id


def _deliver_until_final(max_rounds: int = 20) -> list[str]:
    attempted: list[str] = []
    for _ in range(max_rounds):
        for delivery_id in delivery.take_due(4):
            delivery.attempt(delivery_id)
            attempted.append(delivery_id)
        with session_scope() as session:
            if session.query(WebhookDelivery).filter_by(status=DeliveryStatus.PENDING).count() == 0:
                return attempted
        time.sleep(0.05)
    return attempted


def _verify(secret: str, header: str, body: bytes) -> int:
    """What a client does (Stripe's scheme), written out independently of app/webhooks."""
    parts = dict(item.split("=", 1) for item in header.split(","))
    expected = hmac.new(secret.encode(), f"{parts['t']}.".encode() + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(expected, parts["v1"])
    return int(parts["t"])


def test_a_receiver_failing_twice_gets_the_signed_event_on_the_third_try(client, db, hook, receiver, env_override) -> None:
    env_override(WEBHOOK_RETRY_FIRST_S="0.05")
    user_id, endpoint = hook
    receiver.answers = [500, 503, 204]
    _queue_event(db, user_id)
    _deliver_until_final()
    assert len(receiver.received) == 3
    bodies = {request.body for request in receiver.received}
    assert len(bodies) == 1  # every attempt sends the same event
    event = json.loads(bodies.pop())
    assert (event["type"], event["data"], event["id"][:4]) == ("generation.succeeded", JOB, "evt_")
    for request in receiver.received:
        assert request.path == "/hooks/imagebooth?src=test" and request.headers["content-type"] == "application/json"
        signed_at = _verify(endpoint["secret"], request.headers["imagebooth-signature"], request.body)
        assert abs(signed_at - time.time()) < 60
    [shown] = client.get(f"/api/v1/webhooks/{endpoint['id']}/deliveries").json()["items"]
    assert (shown["status"], shown["attempt_count"], shown["type"], shown["next_attempt_at"]) == (
        "delivered", 3, "generation.succeeded", None)
    assert [(a["number"], a["status_code"]) for a in shown["attempts"]] == [(1, 500), (2, 503), (3, 204)]
    assert [a["error"] for a in shown["attempts"]] == ["answered HTTP 500", "answered HTTP 503", None]


def test_stripes_own_verification_accepts_the_signature(client, db, hook, receiver) -> None:
    """Clients that verify Stripe's webhooks can reuse that code unchanged."""
    import stripe

    user_id, endpoint = hook
    _queue_event(db, user_id)
    _deliver_until_final()
    [request] = receiver.received
    header = request.headers["imagebooth-signature"]
    assert stripe.WebhookSignature.verify_header(request.body, header, endpoint["secret"], tolerance=300)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(request.body + b" ", header, endpoint["secret"], tolerance=300)


def test_the_wait_grows_three_times_after_each_failure_up_to_four_hours(env_override) -> None:
    env_override(WEBHOOK_RETRY_FIRST_S="10")
    settings = delivery.get_settings()
    waits = [delivery.retry_delay(n, settings).total_seconds() for n in range(1, 11)]
    assert waits == [10, 30, 90, 270, 810, 2430, 7290, 14400, 14400, 14400]


def test_a_delivery_is_given_up_after_the_retry_window(client, db, hook, receiver, env_override) -> None:
    env_override(WEBHOOK_RETRY_FIRST_S="0.05", WEBHOOK_RETRY_FOR_S="0.2")
    user_id, _ = hook
    receiver.answers = [500]
    delivery_id = _queue_event(db, user_id)
    _deliver_until_final()
    row = db.get(WebhookDelivery, delivery_id)
    db.refresh(row)
    assert row.status == DeliveryStatus.FAILED and row.next_attempt_at is None
    assert row.attempt_count == len(receiver.received) >= 2
    assert [attempt.status_code for attempt in row.attempts] == [500] * row.attempt_count


def test_redirects_are_not_followed(client, db, hook, receiver, other_receiver, env_override) -> None:
    env_override(WEBHOOK_RETRY_FIRST_S="3600")
    user_id, _ = hook
    receiver.answers, receiver.redirect_to = [302], other_receiver.url
    delivery_id = _queue_event(db, user_id)
    [leased] = delivery.take_due(4)
    outcome = delivery.attempt(leased)
    assert leased == delivery_id and outcome is not None and not outcome.delivered
    assert outcome.status_code == 302 and "redirects are not followed" in (outcome.error or "")
    assert other_receiver.received == []
    assert delivery.take_due(4) == []  # the retry waits its turn


def test_a_target_that_became_private_is_refused_at_send_time(client, db, hook, receiver, env_override) -> None:
    user_id, _ = hook  # registered outside production, where a loopback receiver is allowed
    _queue_event(db, user_id)
    env_override(ENV="production", SECRET_KEY="x" * 40, WEBHOOK_RETRY_FIRST_S="3600")
    [leased] = delivery.take_due(4)
    outcome = delivery.attempt(leased)
    assert outcome is not None and outcome.status_code is None
    assert (outcome.error or "").startswith("not sent: ") and "loopback" in (outcome.error or "")
    assert receiver.received == []


def test_a_leased_delivery_is_not_taken_twice(client, db, hook) -> None:
    user_id, _ = hook
    _queue_event(db, user_id)
    assert len(delivery.take_due(4)) == 1
    assert delivery.take_due(4) == []


def test_deleting_the_endpoint_drops_its_pending_deliveries(client, accounts, db, hook, receiver) -> None:
    user_id, endpoint = hook
    delivery_id = _queue_event(db, user_id)
    assert client.delete(f"/api/v1/webhooks/{endpoint['id']}", headers=accounts.csrf(client)).status_code == 204
    assert delivery.attempt(delivery_id) is None
    assert receiver.received == [] and db.query(WebhookDelivery).count() == 0


def test_no_endpoint_no_event(client, accounts, db) -> None:
    user = accounts.signup(client)
    assert events.record(db, user["id"], "generation.failed", JOB) == 0
