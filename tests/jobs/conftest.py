"""Jobs made through the API for the job layer's tests (no worker: the tests drive the
worker's side themselves, through the same functions a worker calls)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.generation.models import Generation
from app.model_base import utcnow


@pytest.fixture
def caller(client, accounts):
    accounts.signup(client)
    client.headers["Authorization"] = f"Bearer {accounts.api_key(client)['key']}"
    client.cookies.clear()
    return client


@pytest.fixture
def submit(caller, generous_credits):
    def make(**fields) -> str:
        response = caller.post("/api/v1/generations", json={"prompt": "a red circle", **fields})
        assert response.status_code == 202, response.text
        return response.json()["id"]

    return make


@pytest.fixture
def age(db):
    """age(job_id, seconds, *columns): move the job's timestamps into the past."""

    def move(job_id: str, seconds: float, *columns: str) -> None:
        then = utcnow() - timedelta(seconds=seconds)
        db.query(Generation).filter_by(id=job_id).update(dict.fromkeys(columns, then))
        db.commit()

    return move


def free_credits(client) -> int:
    return client.get("/api/v1/me").json()["credits"]["free_remaining"]
