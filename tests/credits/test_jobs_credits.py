"""The gate in front of real jobs: generations and fine-tunes reserve, their ends settle."""

from __future__ import annotations

import pytest

from app.auth.models import User
from app.credits import service
from app.generation.models import Generation, Image
from app.jobs import lifecycle, repository, settlement
from app.jobs.kinds import FINETUNE, GENERATION
from app.model_base import JobStatus
from app.personalization import service as personalization
from app.personalization.models import Finetune, Subject
from app.personalization.schemas import FinetuneRequest


def submit(client, accounts, n=1, key=None):
    headers = accounts.csrf(client) | ({"Idempotency-Key": key} if key else {})
    return client.post("/api/v1/generations", json={"prompt": "a red circle", "n": n}, headers=headers)


def credits(client) -> dict:
    return client.get("/api/v1/me").json()["credits"]


def test_generation_reserves_its_cost_and_a_repeated_key_charges_nothing(client, accounts) -> None:
    accounts.signup(client)
    first = submit(client, accounts, n=4, key="k-1")
    assert first.status_code == 202 and first.json()["cost"] == 4
    again = submit(client, accounts, n=4, key="k-1")
    assert again.json()["id"] == first.json()["id"]
    assert credits(client)["free_remaining"] == 21
    items = client.get("/api/v1/credits/ledger").json()["items"]
    holds = [item for item in items if item["reason"] == "reservation"]
    assert [(hold["amount"], hold["reference"]) for hold in holds] == [(-4, f"generation:{first.json()['id']}")]


def test_short_balance_is_402_and_no_job_is_created(client, accounts, env_override, db) -> None:
    accounts.signup(client)
    env_override(FREE_DAILY_CREDITS="2")
    response = submit(client, accounts, n=3)
    assert response.status_code == 402
    assert response.json()["error"] | {"message": ""} == {
        "code": "insufficient_credits", "message": "", "balance": 2, "needed": 3,
    }
    assert db.query(Generation).count() == 0 and credits(client)["free_remaining"] == 2


def test_cancel_refunds_the_images_not_made(client, accounts) -> None:
    accounts.signup(client)
    job = submit(client, accounts, n=5).json()
    assert credits(client)["free_remaining"] == 20
    assert client.post(f"/api/v1/generations/{job['id']}/cancel", headers=accounts.csrf(client)).status_code == 200
    assert credits(client)["free_remaining"] == 25


def test_an_ended_job_keeps_the_credits_of_what_it_made_and_settles_once(client, accounts, db) -> None:
    accounts.signup(client)
    failed = submit(client, accounts, n=3).json()["id"]
    lifecycle.finish(db, GENERATION, failed, JobStatus.FAILED, repository.ACTIVE, error="boom")
    db.commit()  # settled after the commit
    assert credits(client)["free_remaining"] == 25
    made = db.get(Generation, submit(client, accounts, n=4).json()["id"])
    made.images = [Image(user_id=made.user_id, index=k, seed=k, path=f"x/{k}.png", width=8, height=8) for k in range(4)]
    lifecycle.finish(db, GENERATION, made.id, JobStatus.SUCCEEDED, repository.ACTIVE)
    db.commit()
    assert credits(client)["free_remaining"] == 21
    assert settlement.settle(GENERATION, made.id) is False  # a second settlement: nothing
    assert credits(client)["free_remaining"] == 21


def test_free_tier_runs_one_job_at_a_time_premium_four(client, accounts, db) -> None:
    me = accounts.signup(client)
    assert submit(client, accounts).status_code == 202
    refused = submit(client, accounts)
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "rate_limited"
    assert refused.headers["Retry-After"] and "1 job" in refused.json()["error"]["message"]
    service.admin_grant(db, db.get(User, me["id"]), 10)
    db.commit()
    assert [submit(client, accounts).status_code for _ in range(4)] == [202, 202, 202, 429]


def test_finetune_reserves_20_and_failure_refunds_it(client, accounts, db) -> None:
    me = accounts.signup(client)
    user = db.get(User, me["id"])
    subject = Subject(user_id=user.id, name="Rex", class_noun="circle", token="sks")
    db.add(subject)
    db.flush()
    finetune = personalization.start_finetune(db, user, subject.id, FinetuneRequest())
    db.commit()
    assert finetune.cost == 20 and credits(client)["free_remaining"] == 5
    lifecycle.finish(db, FINETUNE, finetune.id, JobStatus.FAILED, repository.ACTIVE, error="boom")
    db.commit()
    assert credits(client)["free_remaining"] == 25
    with pytest.raises(Exception) as refused:
        for _ in range(2):
            personalization.start_finetune(db, user, subject.id, FinetuneRequest())
    assert getattr(refused.value, "status", None) in (402, 429)
    db.rollback()
    assert db.query(Finetune).filter(Finetune.status == JobStatus.QUEUED).count() == 0
