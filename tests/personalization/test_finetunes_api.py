"""POST /api/v1/subjects/{id}/finetunes, GET and cancel /api/v1/finetunes/{id} (no worker: the
tasks sent wait in the broker)."""

from __future__ import annotations

import pytest
from personalization_checks import row_counts


@pytest.fixture
def subject(create_subject) -> dict:
    response = create_subject()
    assert response.status_code == 201, response.text
    return response.json()


def test_start_queues_a_job_after_commit_and_reports_it(client, subject, db) -> None:
    response = client.post(f"/api/v1/subjects/{subject['id']}/finetunes", json={"steps": 50, "method": "lora"})
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "queued" and body["cost"] == 20  # settings.finetune_credit_cost, reserved
    status = client.get(f"/api/v1/finetunes/{body['id']}").json()
    assert status["phase"] == "queued" and status["progress"] == 0 and status["step"] == 0
    assert status["total_steps"] == 50 and status["model_id"] is None and status["error"] is None
    assert status["eta_seconds"] is None
    from app.models import Finetune

    job = db.get(Finetune, body["id"])
    assert job.config == {"steps": 50, "method": "lora"}
    assert job.dispatched_at is not None and job.dispatches == 1  # its task was sent after the commit
    assert row_counts(db)["finetune_charges"] == 1  # the reservation of its cost


def test_start_without_a_body_uses_the_preset(client, subject) -> None:
    response = client.post(f"/api/v1/subjects/{subject['id']}/finetunes")
    assert response.status_code == 202, response.text
    assert client.get(f"/api/v1/finetunes/{response.json()['id']}").json()["status"] == "queued"


@pytest.mark.parametrize(
    ("body", "field"),
    [({"steps": 0}, "steps"), ({"steps": 2001}, "steps"), ({"steps": "many"}, "steps"),
     ({"method": "magic"}, "method"), ({"prior_preservation": "sometimes"}, "prior_preservation"),
     ({"learning_rate": 1.0}, "learning_rate")],
)
def test_bad_overrides_are_refused(client, subject, db, body, field) -> None:
    response = client.post(f"/api/v1/subjects/{subject['id']}/finetunes", json=body)
    assert response.status_code == 422, response.text
    assert field in response.json()["error"]["message"]
    assert row_counts(db)["finetunes"] == 0


def test_someone_elses_subject_is_not_found_and_nothing_happens(subject, make_client, accounts, db) -> None:
    other = make_client()
    accounts.signup(other)
    other.headers["Authorization"] = f"Bearer {accounts.api_key(other)['key']}"
    response = other.post(f"/api/v1/subjects/{subject['id']}/finetunes", json={})
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    assert other.post("/api/v1/subjects/nonexistent/finetunes", json={}).status_code == 404
    counts = row_counts(db)
    assert counts["finetunes"] == 0 and counts["finetune_charges"] == 0


def test_someone_elses_finetune_is_not_found(client, subject, make_client, accounts) -> None:
    job = client.post(f"/api/v1/subjects/{subject['id']}/finetunes", json={}).json()
    other = make_client()
    accounts.signup(other)
    other.headers["Authorization"] = f"Bearer {accounts.api_key(other)['key']}"
    assert other.get(f"/api/v1/finetunes/{job['id']}").status_code == 404
    assert other.post(f"/api/v1/finetunes/{job['id']}/cancel").status_code == 404
    assert client.get(f"/api/v1/finetunes/{job['id']}").json()["status"] == "queued"


def test_cancel_of_a_queued_job_ends_it_at_once_and_twice_changes_nothing(client, subject) -> None:
    job = client.post(f"/api/v1/subjects/{subject['id']}/finetunes", json={}).json()
    canceled = client.post(f"/api/v1/finetunes/{job['id']}/cancel")
    assert canceled.status_code == 200 and canceled.json()["status"] == "canceled"
    assert canceled.json()["finished_at"] is not None and canceled.json()["eta_seconds"] == 0
    again = client.post(f"/api/v1/finetunes/{job['id']}/cancel")
    assert again.status_code == 200 and again.json()["finished_at"] == canceled.json()["finished_at"]


def test_a_task_delivered_after_cancel_does_nothing(client, subject) -> None:
    from workers.finetune import run

    job = client.post(f"/api/v1/subjects/{subject['id']}/finetunes", json={}).json()
    client.post(f"/api/v1/finetunes/{job['id']}/cancel")
    assert run(job["id"]) == "skipped"
    assert run("no-such-job") == "skipped"
    assert client.get(f"/api/v1/finetunes/{job['id']}").json()["status"] == "canceled"


def test_broker_down_at_submit_accepts_the_job_for_the_outbox(client, subject, accounts, db) -> None:
    from app.models import Finetune
    from tests.outage import post_with, unreachable_url

    key = client.headers["Authorization"].removeprefix("Bearer ")
    reply = post_with({"broker_url": unreachable_url()}, key, f"/api/v1/subjects/{subject['id']}/finetunes", {})
    assert reply.status == 202 and reply.body["status"] == "queued", reply
    job = db.get(Finetune, reply.body["id"])
    assert job.dispatched_at is None and row_counts(db)["finetune_charges"] == 1  # due; charged once


def test_finetunes_need_authentication(make_client) -> None:
    anonymous = make_client()
    assert anonymous.get("/api/v1/finetunes/x").status_code == 401
    assert anonymous.post("/api/v1/subjects/x/finetunes", json={}).status_code == 401
