"""A fine-tune's bookkeeping on the job layer, without training, on both backends: the plan,
phases and progress with an ETA, a cancel winning over a late success, a dead worker's job
queued again."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest

from app.jobs import reconciler, running
from app.jobs.kinds import FINETUNE
from app.model_base import utcnow


@pytest.fixture
def job_id(client, create_subject) -> str:
    subject = create_subject().json()
    return client.post(f"/api/v1/subjects/{subject['id']}/finetunes", json={"steps": 10}).json()["id"]


def _set(job_id: str, **values) -> None:
    from app.db import session_scope
    from app.models import Finetune

    with session_scope() as session:
        for key, value in values.items():
            setattr(session.get(Finetune, job_id), key, value)


def _status(client, job_id: str) -> dict:
    return client.get(f"/api/v1/finetunes/{job_id}").json()


def _claim(job_id: str) -> running.JobRun:
    job = running.claim(FINETUNE, job_id)
    assert job is not None
    return job


def test_the_plan_names_the_photos_and_a_stable_work_folder(client, job_id) -> None:
    from app.personalization import runs

    plan = runs.plan(_claim(job_id))
    assert plan.attempt == 1 and len(plan.images) == 3
    assert plan.work_dir.as_posix().endswith(f"finetunes/{job_id}/work")
    status = _status(client, job_id)
    assert status["status"] == "running" and status["phase"] == "preparing"


def test_a_dead_workers_job_is_queued_again_and_the_next_claim_counts_an_attempt(client, job_id) -> None:
    _claim(job_id)
    _set(job_id, heartbeat_at=utcnow() - timedelta(hours=1), phase="training")
    assert reconciler.reconcile().requeued == [job_id]
    status = _status(client, job_id)
    assert (status["status"], status["phase"]) == ("queued", "queued")
    assert _claim(job_id).attempt == 2 and _status(client, job_id)["attempts"] == 2


def test_progress_is_throttled_and_gives_an_eta_and_the_resume_step(client, job_id) -> None:
    from app.personalization import runs

    now = [100.0]
    job = _claim(job_id)
    job.clock = lambda: now[0]
    reporter = runs.ProgressReporter(job, 10, clock=lambda: now[0])
    reporter.start()
    reporter.phase("training")
    reporter.progress(4, 10)  # the first step of this run is past 1: resumed from a checkpoint
    now[0] += 2.0
    reporter.progress(6, 10)
    status = _status(client, job_id)
    assert status["phase"] == "training" and status["step"] == 6 and status["resumed_from_step"] == 4
    assert status["progress"] == pytest.approx(0.95 * 0.6)
    assert 3.0 <= status["eta_seconds"] <= 4.0  # 4 steps left at 1 s each
    now[0] += 0.1
    reporter.progress(7, 10)  # within a second of the last write: not written
    assert _status(client, job_id)["step"] == 6


def test_a_cancel_wins_over_a_late_success_and_no_model_is_recorded(client, job_id, db) -> None:
    from app.models import TrainedModel
    from app.personalization import runs

    job = _claim(job_id)
    plan = runs.plan(job)
    assert job.stopped() is False
    assert client.post(f"/api/v1/finetunes/{job_id}/cancel").json()["status"] == "canceled"
    job._last_check = -math.inf
    assert job.stopped() is True
    assert runs.succeed(job, plan, {"method": "full"}, plan.out_dir) is False
    assert job.fail("late") is False
    assert db.query(TrainedModel).count() == 0
    status = _status(client, job_id)
    assert status["status"] == "canceled" and status["error"] is None
