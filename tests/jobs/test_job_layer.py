"""The job layer on both backends, driven as a worker drives it: claims, fencing, progress,
outcome before settlement, and the outbox after a web process died between commit and send."""

from __future__ import annotations

import pytest

from app.generation.models import Generation
from app.jobs import reconciler, running
from app.jobs.kinds import GENERATION
from app.model_base import JobStatus
from tests.jobs.conftest import free_credits


def _job(db, job_id: str) -> Generation:
    db.expire_all()
    job = db.get(Generation, job_id)
    assert job is not None
    return job


def test_a_job_is_sent_after_its_commit_and_claimed_once(submit, db) -> None:
    job_id = submit()
    assert _job(db, job_id).dispatched_at is not None and _job(db, job_id).dispatches == 1
    run = running.claim(GENERATION, job_id)
    assert run is not None and run.attempt == 1
    assert running.claim(GENERATION, job_id) is None  # a duplicate delivery does nothing
    assert _job(db, job_id).status == JobStatus.RUNNING


def test_progress_is_throttled_and_a_cancel_stops_the_worker(submit, caller, db) -> None:
    job_id = submit()
    now = [0.0]
    run = running.claim(GENERATION, job_id)
    assert run is not None
    run.clock = lambda: now[0]
    run.report(progress=0.25)
    now[0] += GENERATION.progress_every_s / 2
    run.report(progress=0.5)  # too soon: not written
    assert _job(db, job_id).progress == 0.25
    assert run.stopped() is False
    assert caller.post(f"/api/v1/generations/{job_id}/cancel").json()["status"] == "canceled"
    assert run.stopped() is False  # read at most once per progress_every_s
    now[0] += 2 * GENERATION.progress_every_s
    assert run.stopped() is True
    with pytest.raises(running.JobStopped):
        run.report(progress=0.75)
    assert run.succeed() is False and _job(db, job_id).status == JobStatus.CANCELED


def test_a_worker_presumed_dead_cannot_touch_the_job_another_now_runs(submit, age, db) -> None:
    job_id = submit()
    first = running.claim(GENERATION, job_id)
    assert first is not None
    age(job_id, 3600, "heartbeat_at")
    assert reconciler.reconcile().requeued == [job_id]
    second = running.claim(GENERATION, job_id)
    assert second is not None and second.attempt == 2
    with pytest.raises(running.JobStopped):
        first.report(force=True, progress=0.9)
    assert first.fail("late") is False
    assert running.heartbeats.beat() is None and _job(db, job_id).error is None
    assert second.succeed() is True and _job(db, job_id).status == JobStatus.SUCCEEDED


def test_the_outcome_is_recorded_before_and_apart_from_settlement(submit, caller, db) -> None:
    start = free_credits(caller)
    job_id = submit(n=2)
    run = running.claim(GENERATION, job_id)
    assert run is not None and run.succeed() is True
    job = _job(db, job_id)
    assert job.status == JobStatus.SUCCEEDED and job.settled_at is not None
    assert free_credits(caller) == start  # no images recorded: nothing made, nothing paid
    assert reconciler.reconcile().settled == []  # settling again changes nothing


def test_a_job_left_unsettled_is_settled_by_the_reconciler(submit, caller, age, db) -> None:
    start = free_credits(caller)
    job_id = submit(n=3)
    # A worker that died after committing the outcome and before settling leaves this:
    db.query(Generation).filter_by(id=job_id).update({"status": JobStatus.FAILED})
    db.commit()
    age(job_id, 60, "finished_at")
    assert free_credits(caller) == start - 3
    assert reconciler.reconcile().settled == [job_id]
    assert free_credits(caller) == start and _job(db, job_id).settled_at is not None


def test_credit_gate_down_after_the_outcome_keeps_the_result_and_settles_later(
    backend, submit, caller, age, db, env_override
) -> None:
    if backend != "real":
        pytest.skip("the Redis credit gate runs on the real backend")
    from app.config import get_settings
    from tests.outage import unreachable_url

    redis_url, broker_url = get_settings().redis_url, get_settings().broker_url
    start = free_credits(caller)
    job_id = submit(n=2)
    run = running.claim(GENERATION, job_id)
    assert run is not None
    env_override(REDIS_URL=unreachable_url(), BROKER_URL=broker_url)
    assert run.succeed() is True  # the settlement after it fails: the outcome stands
    job = _job(db, job_id)
    assert job.status == JobStatus.SUCCEEDED and job.settled_at is None
    age(job_id, 60, "finished_at")
    assert reconciler.reconcile().errors  # still down: settling waits
    env_override(REDIS_URL=redis_url)
    assert reconciler.reconcile().settled == [job_id]
    assert free_credits(caller) == start


def test_a_job_whose_web_process_died_before_sending_is_sent_by_the_outbox(caller, accounts, age, db) -> None:
    from tests.outage import post_and_die_before_sending

    key = caller.headers["Authorization"].removeprefix("Bearer ")
    post_and_die_before_sending(key, "/api/v1/generations", {"prompt": "a red circle"})
    (job,) = db.query(Generation).all()
    assert job.status == JobStatus.QUEUED and job.dispatched_at is None
    assert reconciler.reconcile().sent == []  # a moment's grace: the sender may be at it
    age(job.id, 60, "created_at")
    assert reconciler.reconcile().sent == [job.id]
    assert _job(db, job.id).dispatches == 1
