"""The worker's bookkeeping without training, on both backends: claims, sweep, progress, races."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.model_base import utcnow


@pytest.fixture
def job_id(client, create_subject, enqueued) -> str:
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


def test_claim_runs_a_queued_job_once_and_leaves_a_live_one_alone(client, job_id) -> None:
    from app.personalization import runs

    plan = runs.claim(job_id)
    assert plan is not None and plan.attempt == 1 and len(plan.images) == 3
    assert plan.work_dir.as_posix().endswith(f"finetunes/{job_id}/work")
    assert runs.claim(job_id) is None  # running with a fresh heartbeat: a duplicate delivery
    assert _status(client, job_id)["status"] == "running"


def test_sweep_requeues_only_stale_running_jobs_and_the_next_claim_counts_an_attempt(client, job_id) -> None:
    from app.personalization import runs

    runs.claim(job_id)
    assert runs.requeue_stale() == []  # heartbeat fresh
    _set(job_id, heartbeat_at=utcnow() - timedelta(hours=1))
    assert runs.requeue_stale() == [job_id]
    assert runs.requeue_stale() == []  # only one sweeper gets it
    assert _status(client, job_id)["status"] == "queued"
    assert runs.claim(job_id).attempt == 2


def test_progress_is_throttled_and_gives_an_eta_and_the_resume_step(client, job_id) -> None:
    from app.personalization import runs

    runs.claim(job_id)
    now = [100.0]
    reporter = runs.ProgressReporter(job_id, 10, clock=lambda: now[0])
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

    plan = runs.claim(job_id)
    reporter = runs.ProgressReporter(job_id, 10)
    assert reporter.should_cancel() is False
    assert client.post(f"/api/v1/finetunes/{job_id}/cancel").json()["status"] == "canceled"
    reporter._last_check = -1e9
    assert reporter.should_cancel() is True
    assert runs.succeed(plan, {"method": "full"}, plan.out_dir) is False
    assert runs.canceled(job_id) is False and runs.fail(job_id, "late") is False
    assert db.query(TrainedModel).count() == 0
    status = _status(client, job_id)
    assert status["status"] == "canceled" and status["error"] is None
