"""The job-count limit holds under concurrent submissions (not only one after another)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from app.auth.models import User
from app.credits import service
from app.generation.models import Generation

SUBMISSIONS = 10


def submit_at_once(client, headers: dict[str, str], count: int) -> list[int]:
    """`count` submissions released together from as many threads."""
    start = threading.Barrier(count)

    def one(_index: int) -> int:
        start.wait()
        return client.post("/api/v1/generations", json={"prompt": "a red circle"}, headers=headers).status_code

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


@pytest.mark.parametrize("paid, limit", [(0, 1), (100, 4)], ids=["free tier: 1 job", "premium: 4 jobs"])
def test_concurrent_submissions_never_exceed_the_job_count_limit(client, accounts, db, paid, limit) -> None:
    me = accounts.signup(client)
    if paid:
        service.admin_grant(db, db.get(User, me["id"]), paid)
        db.commit()
    statuses = submit_at_once(client, accounts.csrf(client), SUBMISSIONS)
    assert sorted(statuses) == [202] * limit + [429] * (SUBMISSIONS - limit)
    db.expire_all()
    written = db.scalar(select(func.count()).select_from(Generation).where(Generation.user_id == me["id"]))
    assert written == limit
