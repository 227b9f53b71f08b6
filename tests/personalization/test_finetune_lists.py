"""What the Personalize page lists: each subject's fine-tunes (GET /api/v1/finetunes), a class
noun the base model does not know (a warning, not a refusal), and a fine-tune's end as a webhook
event (no worker: the cancel ends it)."""

from __future__ import annotations

import json

from app.webhooks.models import WebhookDelivery


def _start(client, subject_id: str) -> dict:
    response = client.post(f"/api/v1/subjects/{subject_id}/finetunes", json={"steps": 10})
    assert response.status_code == 202, response.text
    return response.json()


def test_fine_tunes_are_listed_newest_first_per_subject(client, make_client, accounts, create_subject) -> None:
    rex, tom = create_subject().json(), create_subject(name="Tom").json()
    first, second, other = _start(client, rex["id"]), _start(client, rex["id"]), _start(client, tom["id"])
    listed = client.get("/api/v1/finetunes").json()["items"]
    assert [item["id"] for item in listed] == [other["id"], second["id"], first["id"]]
    assert listed[0]["subject_id"] == tom["id"] and listed[0]["status"] == "queued"
    of_rex = client.get("/api/v1/finetunes", params={"subject_id": rex["id"]}).json()["items"]
    assert [item["id"] for item in of_rex] == [second["id"], first["id"]]
    assert [item["id"] for item in client.get("/api/v1/finetunes", params={"limit": 1}).json()["items"]] == [other["id"]]
    stranger = make_client()
    accounts.signup(stranger)
    assert stranger.get("/api/v1/finetunes").json() == {"items": []}


def test_a_class_noun_outside_the_base_models_classes_is_a_warning(create_subject) -> None:
    known = create_subject(class_noun="star").json()
    assert known["warnings"] == []
    unknown = create_subject(name="Rover", class_noun="dog")
    assert unknown.status_code == 201  # a hint, never a refusal
    [warning] = unknown.json()["warnings"]
    assert (warning["code"], warning["field"], warning["words"]) == ("unknown_class", "class_noun", ["dog"])
    assert "circle, square, triangle, star" in warning["message"]


def test_a_canceled_fine_tune_is_an_event_for_the_owners_webhook(client, create_subject, db) -> None:
    hook = client.post("/api/v1/webhooks", json={"url": "http://127.0.0.1:9/hooks"}).json()
    job = _start(client, create_subject().json()["id"])
    assert client.post(f"/api/v1/finetunes/{job['id']}/cancel").json()["status"] == "canceled"
    [delivery] = client.get(f"/api/v1/webhooks/{hook['id']}/deliveries").json()["items"]
    assert delivery["type"] == "finetune.canceled"
    data = json.loads(db.query(WebhookDelivery).one().body)["data"]
    assert data == client.get(f"/api/v1/finetunes/{job['id']}").json()  # as the API shows it
