"""Through a real worker process: a fine-tune whose worker is SIGKILLed mid-training is queued
again by the next worker's reconciler (its heartbeat went stale) and resumes from its
checkpoint, charged once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
REPO_ROOT = Path(__file__).resolve().parents[2]
STEPS = 30
# Beats twice a second, stale after six missed beats, repairs every half second.
JOB_SETTINGS = {"JOB_HEARTBEAT_S": "0.5", "JOB_STALE_AFTER_S": "3", "JOB_RECONCILE_EVERY_S": "0.5"}


def _start_worker(log_path: Path) -> subprocess.Popen:
    env = {**os.environ, **{f"IMAGEBOOTH_{k}": v for k, v in JOB_SETTINGS.items()}}
    with open(log_path, "a") as log:
        return subprocess.Popen([sys.executable, "-m", "app.cli", "worker", "--queues", "training"],
                                cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def _wait_for(predicate, timeout: float, what: str, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


def test_killed_worker_job_resumes_from_its_checkpoint_on_the_next_worker(
    client, create_subject, tmp_path, tiny_base_folder, env_override, db
) -> None:
    from app import storage
    from app.catalog.model_card import LORA_FILE
    from app.models import TrainedModel

    config = tmp_path / "finetune.yaml"
    config.write_text("num_class_images: 2\nclass_image_steps: 2\ncheckpoint_every: 5\n")
    env_override(MODEL_PATH=str(tiny_base_folder), FINETUNE_CONFIG=str(config))
    log_path = tmp_path / "workers.log"
    first = _start_worker(log_path)
    try:
        # 1. start from the API; watch the phases go by
        subject = create_subject().json()
        job_id = client.post(f"/api/v1/subjects/{subject['id']}/finetunes", json={"steps": STEPS}).json()["id"]
        checkpoint = storage.resolve(f"finetunes/{job_id}/work/checkpoints/last.ckpt")
        phases = []

        def checkpointed() -> bool:
            # The file is looked at first and the kill follows it at once, with no request in
            # between, so the job cannot reach its last step before the kill however fast it runs.
            if checkpoint.exists():
                return True
            status = client.get(f"/api/v1/finetunes/{job_id}").json()
            if not phases or phases[-1] != status["phase"]:
                phases.append(status["phase"])
            assert status["status"] in ("queued", "running"), status
            return False

        _wait_for(checkpointed, 300, "the first checkpoint", interval=0.02)
        # 2. SIGKILL mid-training: no chance to requeue or clean up anything
        first.send_signal(signal.SIGKILL)
        first.wait()
        killed_at = client.get(f"/api/v1/finetunes/{job_id}").json()
        assert killed_at["status"] == "running" and killed_at["step"] < STEPS
        assert phases[0] in ("queued", "preparing") and killed_at["phase"] == "training"
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    # 3. a new worker notices the dead worker's stale heartbeat and queues the job again
    second = _start_worker(log_path)
    try:
        def finished() -> dict | None:
            status = client.get(f"/api/v1/finetunes/{job_id}").json()
            return status if status["status"] in ("succeeded", "failed", "canceled") else None

        done = _wait_for(finished, 420, "the resumed job to finish", interval=0.5)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=30)
    log = log_path.read_text()
    assert done["status"] == "succeeded", (done, log[-3000:])
    entries = client.get("/api/v1/credits/ledger").json()["items"]
    assert sum(e["amount"] for e in entries if e["reference"] == f"finetune:{job_id}") == -done["cost"]  # once
    assert done["attempts"] == 2 and done["resumed_from_step"] >= 5, done  # not step 0
    assert f"fine-tune {job_id} resumed at step {done['resumed_from_step']}" in log
    model = db.get(TrainedModel, done["model_id"])
    assert model.token == subject["token"] and (storage.resolve(model.path) / LORA_FILE).is_file()
