"""The reconciler's round on both backends: dead workers' jobs, lost messages, back-off."""

from __future__ import annotations

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


def test_only_running_jobs_with_a_stale_heartbeat_are_queued_again(submit, age, db) -> None:
    stale_id, fresh_id, queued_id = submit(), submit(), submit()
    for job_id in (stale_id, fresh_id):
        running.claim(GENERATION, job_id)
    age(stale_id, 3600, "heartbeat_at")
    result = reconciler.reconcile()
    assert result.requeued == [stale_id] and result.failed == []
    assert [_job(db, i).status for i in (stale_id, fresh_id, queued_id)] == [
        JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.QUEUED]
    assert _job(db, stale_id).dispatches == 2  # sent again at once
    assert reconciler.reconcile().requeued == []


def test_a_job_whose_workers_keep_dying_is_given_up_and_refunded(submit, caller, age, db) -> None:
    start = free_credits(caller)
    job_id = submit(n=2)
    for attempt in range(1, GENERATION.max_attempts + 1):
        run = running.claim(GENERATION, job_id)
        assert run is not None and run.attempt == attempt
        age(job_id, 3600, "heartbeat_at")
        result = reconciler.reconcile()
    assert result.failed == [job_id]
    job = _job(db, job_id)
    assert job.status == JobStatus.FAILED and "3 times" in (job.error or "")
    assert job.settled_at is not None and free_credits(caller) == start


def test_a_lost_message_is_sent_again_with_back_off(submit, age, db, env_override) -> None:
    env_override(JOB_RESEND_AFTER_S="10")
    job_id = submit()
    age(job_id, 5, "dispatched_at")
    assert reconciler.reconcile().sent == []  # sent 5 s ago: maybe just waiting in the queue
    age(job_id, 11, "dispatched_at")
    assert reconciler.reconcile().sent == [job_id]
    age(job_id, 15, "dispatched_at")  # the second send waits twice as long
    assert reconciler.reconcile().sent == []
    age(job_id, 21, "dispatched_at")
    assert reconciler.reconcile().sent == [job_id] and _job(db, job_id).dispatches == 3
