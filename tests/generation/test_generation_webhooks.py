"""A generation's end reaches its owner's webhook: through a real worker, signed, retried
past a receiver that fails twice, every attempt on record; the job never waits for it."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest

from app.webhooks.models import WebhookDelivery
from tests.generation.conftest import wait_final
from tests.webhooks.conftest import receiver  # noqa: F401 - the local receiver fixture

DELIVERY_TIMEOUT_S = 30


def _register(caller, url: str) -> dict:
    created = caller.post("/api/v1/webhooks", json={"url": url})
    assert created.status_code == 201, created.text
    return created.json()


def _signature_matches(secret: str, header: str, body: bytes) -> bool:
    parts = dict(item.split("=", 1) for item in header.split(","))
    expected = hmac.new(secret.encode(), f"{parts['t']}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts["v1"])


@pytest.mark.slow
def test_a_finished_generation_is_delivered_signed_after_two_failures(worker, caller, receiver) -> None:  # noqa: F811
    hook = _register(caller, receiver.url)
    receiver.answers = [500, 502, 200]
    submitted = caller.post("/api/v1/generations", json={"prompt": "a red circle", "n": 1, "steps": 2, "seed": 5})
    job, _ = wait_final(caller, submitted.json()["id"])
    assert job["status"] == "succeeded", worker.log()[-3000:]
    deadline = time.monotonic() + DELIVERY_TIMEOUT_S
    while len(receiver.received) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(receiver.received) == 3, (receiver.received, worker.log()[-3000:])
    for request in receiver.received:
        assert _signature_matches(hook["secret"], request.headers["imagebooth-signature"], request.body)
    event = json.loads(receiver.received[-1].body)
    assert event["type"] == "generation.succeeded" and event["id"].startswith("evt_")
    # the job as GET /api/v1/generations/{id} shows it
    assert event["data"] == job | {"queue_position": None, "estimated_wait_s": None}
    [delivery] = caller.get(f"/api/v1/webhooks/{hook['id']}/deliveries").json()["items"]
    assert (delivery["status"], [a["status_code"] for a in delivery["attempts"]]) == ("delivered", [500, 502, 200])


def test_a_canceled_generation_is_an_event_even_without_a_worker(client, accounts, db, receiver) -> None:  # noqa: F811
    accounts.signup(client)
    csrf = accounts.csrf(client)
    hook = client.post("/api/v1/webhooks", json={"url": receiver.url}, headers=csrf).json()
    job_id = client.post("/api/v1/generations", json={"prompt": "a red circle"}, headers=csrf).json()["id"]
    assert db.query(WebhookDelivery).count() == 0  # nothing has ended yet
    assert client.post(f"/api/v1/generations/{job_id}/cancel", headers=csrf).json()["status"] == "canceled"
    [delivery] = client.get(f"/api/v1/webhooks/{hook['id']}/deliveries").json()["items"]
    assert (delivery["type"], delivery["status"], delivery["attempts"]) == ("generation.canceled", "pending", [])
    body = json.loads(db.query(WebhookDelivery).one().body)
    assert (body["data"]["id"], body["data"]["status"]) == (job_id, "canceled")
