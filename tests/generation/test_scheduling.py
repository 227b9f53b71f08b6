"""The queue's order without a worker: premium first, users in fair turns, batches of jobs
that can share a UNet call, and the place in line (position, estimated wait) the API shows."""

from __future__ import annotations

import pytest

from app.auth.models import User
from app.credits import service as credits
from app.generation import scheduling
from app.generation.models import Generation
from app.model_base import JobStatus


def _user(make_client, accounts, paid: int = 0, db=None):
    client = make_client()
    me = accounts.signup(client)
    if paid:
        credits.admin_grant(db, db.get(User, me["id"]), paid)
        db.commit()
    return client


def _submit(client, accounts, **fields) -> str:
    body = {"prompt": "a red circle", **fields}
    response = client.post("/api/v1/generations", json=body, headers=accounts.csrf(client))
    assert response.status_code == 202, response.text
    return response.json()["id"]


def _next_batch(db, max_images: int = 8) -> list[str]:
    db.expire_all()
    return scheduling.next_batch(db, max_images)[0]


def _positions(client, job_ids: list[str]) -> list[int]:
    return [client.get(f"/api/v1/generations/{job_id}").json()["queue_position"] for job_id in job_ids]


def test_premium_work_runs_before_free_work(make_client, accounts, db) -> None:
    free = _user(make_client, accounts)
    premium = _user(make_client, accounts, paid=100, db=db)
    free_job = _submit(free, accounts, steps=5)
    premium_job = _submit(premium, accounts, steps=6)  # later, and not batchable with the free one
    assert _next_batch(db) == [premium_job]
    assert _positions(premium, [premium_job]) == [1] and _positions(free, [free_job]) == [2]
    assert db.get(Generation, premium_job).priority > db.get(Generation, free_job).priority == 0


def test_users_take_turns_in_proportion_to_the_work_they_ask_for(make_client, accounts, db) -> None:
    flooder, other = _user(make_client, accounts), _user(make_client, accounts)
    flood = [_submit(flooder, accounts, n=8) for _ in range(3)]
    single = _submit(other, accounts)  # last in, but its owner has nothing else queued
    assert _positions(flooder, flood) == [1, 3, 4] and _positions(other, [single]) == [2]
    # the first of the flood runs; the single picture is next, ahead of the rest of the flood
    db.query(Generation).filter(Generation.id == flood[0]).update({"status": JobStatus.RUNNING})
    db.commit()
    assert _next_batch(db) == [single]
    # its second picture (4 picture-steps after its first) still comes before the flood's next 32
    late = _submit(other, accounts)
    assert _positions(other, [single, late]) == [1, 2] and _positions(flooder, flood[1:]) == [3, 4]


def test_a_batch_takes_the_first_job_and_later_ones_that_share_its_unet_call(make_client, accounts, db) -> None:
    users = [_user(make_client, accounts) for _ in range(5)]
    first = _submit(users[0], accounts, n=3)
    other_steps = _submit(users[1], accounts, steps=6)
    too_many = _submit(users[2], accounts, n=6)  # 3 + 6 > 8: waits for the next batch
    fits = _submit(users[3], accounts, n=5, negative_prompt="blue", seed=4)  # own prompts and seeds are fine
    last = _submit(users[4], accounts)
    assert _next_batch(db) == [first, fits]
    assert _next_batch(db, max_images=4) == [first, last]
    assert _next_batch(db, max_images=1) == [first]  # batching off: one job at a time
    db.query(Generation).filter(Generation.id == first).update({"status": JobStatus.CANCELED})
    db.commit()
    assert _next_batch(db) == [other_steps]
    assert too_many not in _next_batch(db)


def test_the_estimated_wait_follows_the_measured_pace(make_client, accounts, db) -> None:
    client = _user(make_client, accounts)
    ahead, behind = _submit(client, accounts, n=2, steps=4), _submit(client, accounts)
    view = client.get(f"/api/v1/generations/{behind}").json()
    assert view["queue_position"] == 2 and view["estimated_wait_s"] is None  # nothing measured yet
    finished = db.get(Generation, _submit(_user(make_client, accounts), accounts))
    finished.status, finished.image_step_s = JobStatus.SUCCEEDED, 0.5  # a worker measured 0.5 s per picture-step
    db.commit()
    # ahead of it: the 2 x 4 picture-steps of the first job
    assert client.get(f"/api/v1/generations/{behind}").json()["estimated_wait_s"] == pytest.approx(4.0)
    assert client.get(f"/api/v1/generations/{ahead}").json()["estimated_wait_s"] == 0
