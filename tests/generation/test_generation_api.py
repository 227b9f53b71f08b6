"""The generation API without a worker: validation at the edge, jobs, queue position,
idempotency, cancel of queued jobs, history, isolation, and outages at submit."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.catalog.service import resolve_model
from app.generation.models import Generation
from app.model_base import JobStatus, utcnow
from app.personalization.models import ModelKind, TrainedModel
from tests.outage import post_with, unreachable_url

VALID = {"prompt": "a red circle on a blue background"}


def _submit(client, headers=None, **fields):
    return client.post("/api/v1/generations", json={**VALID, **fields}, headers=headers or {})


def _personal_model(db, user_id: str, path: str = "models/x") -> TrainedModel:
    row = TrainedModel(user_id=user_id, name="my dog", kind=ModelKind.PERSONAL, token="sks",
                       class_noun="dog", path=path)
    db.add(row)
    db.commit()
    return row


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"prompt": ""}, "prompt"),
        ({"prompt": "   \n\t "}, "prompt"),
        ({"prompt": "x" * 1001}, "prompt"),
        ({"negative_prompt": "x" * 1001}, "negative_prompt"),
        ({"n": 0}, "n"),
        ({"n": 9}, "n"),
        ({"n": "2"}, "n"),
        ({"steps": 0}, "steps"),
        ({"steps": 101}, "steps"),
        ({"guidance_scale": -0.5}, "guidance_scale"),
        ({"guidance_scale": 30.01}, "guidance_scale"),
        ({"guidance_scale": "high"}, "guidance_scale"),
        ({"seed": 1.5}, "seed"),
        ({"seed": "abc"}, "seed"),
        ({"seed": -1}, "seed"),
        ({"seed": 2**32}, "seed"),
        ({"unknown_field": 1}, "unknown_field"),
    ],
)
def test_bad_input_is_422_naming_the_field(caller, db, fields, field) -> None:
    response = _submit(caller, **fields)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["fields"][0]["field"] == field
    assert error["message"].startswith(f"{field}:")
    assert db.query(Generation).count() == 0  # no job, no charge


def test_prompt_of_exactly_1000_characters_and_edge_values_are_accepted(caller) -> None:
    response = _submit(caller, prompt="y" * 1000, n=8, steps=100, guidance_scale=30, seed=0)
    assert response.status_code == 202, response.text
    response = _submit(caller, n=1, steps=1, guidance_scale=0.0, seed=2**32 - 1)
    assert response.status_code == 202, response.text


def test_unknown_model_is_404_naming_the_model(caller) -> None:
    response = _submit(caller, model="0" * 32)
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "model_not_found" and error["field"] == "model"
    assert error["message"].startswith("model:") and "0" * 32 in error["message"]


def test_someone_elses_model_is_404_like_an_unknown_one(make_client, accounts, db) -> None:
    owner, other = make_client(), make_client()
    owner_id = accounts.signup(owner)["id"]
    accounts.signup(other)
    model = _personal_model(db, owner_id)
    response = other.post("/api/v1/generations", json={**VALID, "model": model.id}, headers=accounts.csrf(other))
    assert response.status_code == 404 and response.json()["error"]["field"] == "model"
    mine = owner.post("/api/v1/generations", json={**VALID, "model": model.id}, headers=accounts.csrf(owner))
    assert mine.status_code == 202


def test_needs_authentication(client) -> None:
    assert client.post("/api/v1/generations", json=VALID).status_code == 401
    assert client.get("/api/v1/generations").status_code == 401


def test_submit_answers_202_with_cost_and_reports_queue_position(caller, db) -> None:
    first = _submit(caller, n=3)
    assert first.status_code == 202
    body = first.json()
    assert body["status"] == "queued" and body["cost"] == 3 and len(body["id"]) == 32
    second = _submit(caller).json()
    job = caller.get(f"/api/v1/generations/{second['id']}").json()
    assert job["status"] == "queued" and job["progress"] == 0 and job["images"] == []
    assert job["queue_position"] == 2
    assert caller.get(f"/api/v1/generations/{body['id']}").json()["queue_position"] == 1
    row = db.get(Generation, body["id"])
    # the defaults recorded are the base model card's (the engine's when a folder has none)
    defaults = resolve_model(db, row.user_id, None)
    assert (row.steps, row.guidance_scale) == (defaults.default_steps, defaults.default_guidance)
    assert row.seed is not None


def test_idempotency_key_returns_the_first_job(caller, db) -> None:
    headers = {"Idempotency-Key": "retry-123"}
    first = _submit(caller, headers=headers, n=2)
    again = _submit(caller, headers=headers, n=2)
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()
    assert db.query(Generation).count() == 1
    other = _submit(caller, headers={"Idempotency-Key": "retry-456"}, n=2)
    assert other.json()["id"] != first.json()["id"]


def test_idempotency_keys_are_per_user(make_client, accounts) -> None:
    one, two = make_client(), make_client()
    accounts.signup(one)
    accounts.signup(two)
    a = one.post("/api/v1/generations", json=VALID, headers={"Idempotency-Key": "k", **accounts.csrf(one)})
    b = two.post("/api/v1/generations", json=VALID, headers={"Idempotency-Key": "k", **accounts.csrf(two)})
    assert a.json()["id"] != b.json()["id"]


def test_cancel_a_queued_job(caller, db) -> None:
    job_id = _submit(caller).json()["id"]
    response = caller.post(f"/api/v1/generations/{job_id}/cancel")
    assert response.status_code == 200 and response.json()["status"] == "canceled"
    again = caller.post(f"/api/v1/generations/{job_id}/cancel")
    assert again.status_code == 200 and again.json()["status"] == "canceled"
    row = db.get(Generation, job_id)
    assert row.finished_at is not None and row.started_at is None


def test_history_is_newest_first_paginated_and_private(make_client, accounts) -> None:
    mine, theirs = make_client(), make_client()
    accounts.signup(mine)
    accounts.signup(theirs)
    ids = [mine.post("/api/v1/generations", json={"prompt": f"p{k}"}, headers=accounts.csrf(mine)).json()["id"]
           for k in range(5)]
    theirs.post("/api/v1/generations", json=VALID, headers=accounts.csrf(theirs))
    seen, cursor = [], None
    for expected in (2, 2, 1):
        page = mine.get("/api/v1/generations", params={"limit": 2, **({"cursor": cursor} if cursor else {})}).json()
        assert len(page["items"]) == expected
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
    assert cursor is None
    assert seen == ids[::-1]
    assert [item["prompt"] for item in mine.get("/api/v1/generations").json()["items"]] == [f"p{k}" for k in range(4, -1, -1)]
    other_page = theirs.get("/api/v1/generations").json()["items"]
    assert len(other_page) == 1 and other_page[0]["id"] not in ids


@pytest.mark.parametrize("params", [{"cursor": "not-a-cursor"}, {"limit": 0}, {"limit": 101}])
def test_history_bad_parameters_are_422(caller, params) -> None:
    response = caller.get("/api/v1/generations", params=params)
    assert response.status_code == 422
    assert response.json()["error"]["fields"][0]["field"] == next(iter(params))


def test_another_users_job_and_images_are_404(make_client, accounts) -> None:
    owner, other = make_client(), make_client()
    accounts.signup(owner)
    accounts.signup(other)
    job_id = owner.post("/api/v1/generations", json=VALID, headers=accounts.csrf(owner)).json()["id"]
    assert other.get(f"/api/v1/generations/{job_id}").status_code == 404
    assert other.post(f"/api/v1/generations/{job_id}/cancel", headers=accounts.csrf(other)).status_code == 404
    assert other.get(f"/api/v1/generations/{job_id}/archive").status_code == 404
    assert other.get("/api/v1/images/" + "0" * 32).status_code == 404
    assert owner.get(f"/api/v1/generations/{job_id}").json()["status"] == "queued"


def test_archive_of_a_job_without_images_is_409(caller) -> None:
    job_id = _submit(caller).json()["id"]
    response = caller.get(f"/api/v1/generations/{job_id}/archive")
    assert response.status_code == 409 and response.json()["error"]["code"] == "no_images"


def test_reading_a_job_never_changes_it(caller, db) -> None:
    job_id = _submit(caller).json()["id"]
    long_ago = utcnow() - timedelta(hours=1)
    db.query(Generation).filter_by(id=job_id).update(
        {"status": JobStatus.RUNNING, "started_at": long_ago, "heartbeat_at": long_ago})
    db.commit()
    assert caller.get(f"/api/v1/generations/{job_id}").json()["status"] == "running"  # the reconciler's job
    db.expire_all()
    assert db.get(Generation, job_id).heartbeat_at == long_ago


def test_long_poll_returns_at_timeout_when_nothing_changes(caller) -> None:
    import time

    job_id = _submit(caller).json()["id"]
    started = time.monotonic()
    body = caller.get(f"/api/v1/generations/{job_id}", params={"wait": 0.3}).json()
    assert body["status"] == "queued" and 0.25 <= time.monotonic() - started < 3
    assert caller.get(f"/api/v1/generations/{job_id}", params={"wait": 26}).status_code == 422


def test_broker_down_at_submit_accepts_the_job_for_the_outbox(client, accounts, db) -> None:
    accounts.signup(client)
    key = accounts.api_key(client)["key"]
    before = client.get("/api/v1/me").json()["credits"]["free_remaining"]
    reply = post_with({"broker_url": unreachable_url()}, key, "/api/v1/generations", {**VALID, "n": 2})
    assert reply.status == 202 and reply.body["status"] == "queued" and reply.body["cost"] == 2, reply
    job = db.get(Generation, reply.body["id"])
    assert job.status == JobStatus.QUEUED and job.dispatched_at is None  # due: the reconciler sends it
    assert client.get("/api/v1/me").json()["credits"]["free_remaining"] == before - 2  # reserved once


def test_credit_gate_down_at_submit_is_503_and_charges_nothing(backend, client, accounts, db) -> None:
    if backend != "real":
        pytest.skip("the Redis credit gate runs on the real backend")
    from app.config import get_settings
    from app.models import CreditLedgerEntry

    accounts.signup(client)
    key = accounts.api_key(client)["key"]
    reply = post_with({"redis_url": unreachable_url(), "broker_url": get_settings().broker_url}, key,
                      "/api/v1/generations", VALID)
    assert reply.status == 503 and reply.body["error"]["code"] == "service_unavailable", reply
    assert int(reply.headers["retry-after"]) > 0 and "nothing was charged" in reply.body["error"]["message"]
    assert db.query(Generation).count() == 0
    assert db.query(CreditLedgerEntry).filter(CreditLedgerEntry.reference.like("generation:%")).count() == 0


def test_quality_profile_runs_more_steps_unless_told_otherwise(caller, db) -> None:
    quality = _submit(caller, profile="quality").json()
    row = db.get(Generation, quality["id"])
    assert row.profile == "quality" and row.steps == 25
    assert caller.get(f"/api/v1/generations/{quality['id']}").json()["profile"] == "quality"
    explicit = db.get(Generation, _submit(caller, profile="quality", steps=12).json()["id"])
    assert explicit.steps == 12
    refused = _submit(caller, profile="turbo")
    assert refused.status_code == 422 and "profile" in refused.text


def test_a_lost_image_file_is_410_for_the_picture_and_the_archive(caller, db) -> None:
    from app.generation.models import Image

    job = db.get(Generation, _submit(caller).json()["id"])
    db.add(Image(generation_id=job.id, user_id=job.user_id, index=0, seed=1, path="generations/gone.png", width=64,
                 height=64))
    db.commit()
    image_id = caller.get(f"/api/v1/generations/{job.id}").json()["images"][0]["id"]
    for path in (f"/api/v1/images/{image_id}", f"/api/v1/generations/{job.id}/archive"):
        response = caller.get(path)
        assert (response.status_code, response.json()["error"]["code"]) == (410, "image_missing"), path
