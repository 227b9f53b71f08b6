"""`finetune.run` in this process on a tiny random model: success, cancel, failure.

ML-heavy, so these run once (embedded pass); the database bookkeeping they rely on is
tested on both backends in test_runs.py.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.backend_independent

TINY_CONFIG = ("steps: 6\nnum_class_images: 2\nclass_image_steps: 2\ncheckpoint_every: 3\n"
               "validation_images: 1\nvalidation_steps: 2\n")


@pytest.fixture
def tiny_model(env_override, tiny_base_folder, tmp_path):
    config = tmp_path / "finetune.yaml"
    config.write_text(TINY_CONFIG)
    env_override(MODEL_PATH=str(tiny_base_folder), FINETUNE_CONFIG=str(config))
    return tiny_base_folder


@pytest.fixture
def queued_job(client, create_subject, tiny_model):
    def start(**overrides) -> str:
        subject = create_subject().json()
        response = client.post(f"/api/v1/subjects/{subject['id']}/finetunes", json=overrides)
        assert response.status_code == 202, response.text
        return response.json()["id"]

    return start


def test_task_trains_reports_phases_and_records_the_personal_model(client, user, queued_job, tiny_model, monkeypatch, db) -> None:
    from app import storage
    from app.models import TrainedModel
    from app.personalization.runs import ProgressReporter
    from workers.finetune import run

    phases: list[str] = []
    original = ProgressReporter.phase
    monkeypatch.setattr(ProgressReporter, "phase", lambda self, phase: (phases.append(phase), original(self, phase))[1])
    job_id = queued_job()
    assert run(job_id) == "succeeded"
    assert phases == ["preparing", "class_images", "training", "validating", "done"]
    status = client.get(f"/api/v1/finetunes/{job_id}").json()
    assert status["status"] == "succeeded" and status["phase"] == "done" and status["progress"] == 1
    assert status["step"] == status["total_steps"] == 6 and status["eta_seconds"] == 0
    assert status["attempts"] == 1 and status["resumed_from_step"] is None
    # every checkpoint's scores (3 photos: none held out, so the drift alone, and the last step chosen)
    assert [entry["step"] for entry in status["checkpoints"]] == [3, 6] and status["chosen_step"] == 6
    assert all("prior_drift" in entry["scores"] for entry in status["checkpoints"]) and status["checkpoint_rule"]
    model = db.get(TrainedModel, status["model_id"])
    subject = client.get("/api/v1/subjects").json()["items"][0]
    assert (model.user_id, model.kind, model.name) == (user["id"], "personal", subject["name"])
    assert (model.token, model.class_noun, model.method) == (subject["token"], "circle", "lora")
    assert model.metrics["token"] == subject["token"] and model.metrics["base_model"] == str(tiny_model)
    folder = storage.resolve(model.path)
    assert model.path == f"models/{user['id']}/{model.id}" and (folder / "pytorch_lora_weights.safetensors").exists()
    assert (folder / "imagebooth_model.json").exists()
    work = storage.resolve(f"finetunes/{job_id}/work")
    assert not (work / "checkpoints").exists() and (work / "tensorboard").is_dir()
    # a re-delivered task finds the job finished and does nothing
    assert run(job_id) == "skipped"
    assert db.query(TrainedModel).count() == 1


def test_cancel_during_training_releases_the_worker_and_makes_no_model(client, queued_job, monkeypatch, db) -> None:
    import math

    from app import storage
    from app.models import TrainedModel
    from app.personalization import runs
    from workers.finetune import run

    job_id = queued_job(steps=200)
    original = runs.ProgressReporter.progress

    def progress_then_cancel(self, step, total):
        original(self, step, total)
        if step == 2:
            assert client.post(f"/api/v1/finetunes/{job_id}/cancel").json()["status"] == "canceled"
            self.job._last_check = -math.inf  # read the status at the next step, not a second later

    monkeypatch.setattr(runs.ProgressReporter, "progress", progress_then_cancel)
    assert run(job_id) == "canceled"
    assert not storage.resolve(f"finetunes/{job_id}/work/checkpoints").exists()  # it never resumes
    status = client.get(f"/api/v1/finetunes/{job_id}").json()
    assert status["status"] == "canceled" and status["model_id"] is None and status["step"] < 10
    assert db.query(TrainedModel).count() == 0


def test_a_failure_ends_the_job_with_a_readable_error(client, queued_job, db) -> None:
    from app import storage
    from app.models import SubjectPhoto
    from workers.finetune import run

    job_id = queued_job()
    for photo in db.query(SubjectPhoto).all():
        storage.resolve(photo.path).unlink()
    assert run(job_id) == "failed"
    status = client.get(f"/api/v1/finetunes/{job_id}").json()
    assert status["status"] == "failed" and status["error"].startswith("Training failed: FileNotFoundError")
    assert status["model_id"] is None
