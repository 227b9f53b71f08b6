"""The ledger as people read it: one line per job (hold, release and spend together)."""

from __future__ import annotations

from app.auth.models import User
from app.credits import service
from app.generation.models import Generation, Image
from app.jobs import lifecycle, repository
from app.jobs.kinds import GENERATION
from app.model_base import JobStatus


def submit(client, accounts, n: int):
    return client.post("/api/v1/generations", json={"prompt": "a red circle", "n": n}, headers=accounts.csrf(client)).json()


def test_one_line_per_job_and_other_entries_as_they_are(client, accounts, db, env_override) -> None:
    env_override(FREE_MAX_ACTIVE_JOBS="5", FREE_DAILY_CREDITS="3")
    me = accounts.signup(client)
    service.admin_grant(db, db.get(User, me["id"]), 10, note="welcome")
    db.commit()
    settled = submit(client, accounts, n=5)  # 3 free + 2 paid held
    job = db.get(Generation, settled["id"])
    job.images = [Image(user_id=job.user_id, index=k, seed=k, path=f"x/{k}.png", width=8, height=8) for k in range(4)]
    lifecycle.finish(db, GENERATION, job.id, JobStatus.SUCCEEDED, repository.ACTIVE)
    db.commit()  # settled after the commit: 4 pictures made
    running = submit(client, accounts, n=2)
    items = client.get("/api/v1/credits/activity").json()["items"]
    assert [(item["kind"], item["reason"], item["amount"]) for item in items] == [
        ("job", "job", -2), ("job", "job", -4), ("entry", "daily_allowance", 3), ("entry", "admin", 10),
    ]
    latest, first = items[0], items[1]
    assert (latest["reference"], latest["held"], latest["spent"], latest["settled"]) == (
        f"generation:{running['id']}", 2, 0, False)
    assert (first["reference"], first["held"], first["spent"], first["settled"], first["free"]) == (
        f"generation:{settled['id']}", 5, 4, True, -3)
    # the raw ledger still has every entry: 2 holds + 2 releases + 2 spends for the first job, 1 hold for the second
    raw = client.get("/api/v1/credits/ledger?limit=200").json()["items"]
    assert len([entry for entry in raw if entry["reference"] == f"generation:{settled['id']}"]) == 6


def test_activity_pages_with_a_cursor(client, accounts, env_override) -> None:
    env_override(FREE_MAX_ACTIVE_JOBS="10")
    accounts.signup(client)
    jobs = [submit(client, accounts, n=1)["id"] for _ in range(5)]
    first = client.get("/api/v1/credits/activity?limit=3").json()
    second = client.get(f"/api/v1/credits/activity?limit=3&cursor={first['next_cursor']}").json()
    seen = [item["reference"] for item in first["items"] + second["items"] if item["kind"] == "job"]
    assert seen == [f"generation:{job}" for job in reversed(jobs)] and second["next_cursor"] is None
    assert client.get("/api/v1/credits/activity?cursor=nonsense").status_code == 422
