"""`finetune.run(job_id)` on the training queue: a DreamBooth fine-tune of one subject.

Thin: the bookkeeping is `app.personalization.runs`, the training `workers.dreambooth`.
Idempotent: a finished job, or one a live worker holds, is left alone. The work folder is
stable per job, so a task delivered again after its worker was killed continues from the
last checkpoint.

Re-delivery after SIGKILL (read in kombu's transports, not measured): the filesystem transport
deletes a message file when it hands the message out, and Redis restores an unacknowledged
message only after its visibility timeout (an hour by default); with the solo pool
`task_reject_on_worker_lost` has no parent process to requeue anything. So a starting
worker sweeps: running jobs with a stale heartbeat go back on the queue.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from pathlib import Path

from celery.signals import worker_ready

from app.config import get_settings
from app.personalization import runs
from app.queue import enqueue
from workers.celery_app import app

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see workers/shapes/train.py
log = logging.getLogger(__name__)


@app.task(name="finetune.run")
def run(finetune_id: str) -> str:
    # 1. claim the job (or find there is nothing to do)
    plan = runs.claim(finetune_id)
    if plan is None:
        return "skipped"
    log.info("fine-tune %s: attempt %d", finetune_id, plan.attempt)
    # 2. train, reporting to the database
    try:
        with runs.Heartbeat(finetune_id):
            outcome = _train(plan)
    except Exception as error:
        log.exception("fine-tune %s failed", finetune_id)
        runs.fail(finetune_id, f"Training failed: {_readable(error)}")
        _discard_checkpoints(plan)
        return "failed"
    _discard_checkpoints(plan)
    return outcome


def _train(plan: runs.RunPlan) -> str:
    from workers.dreambooth.config import load_config
    from workers.dreambooth.train import Canceled, FinetuneJob, Hooks, run_finetune

    settings = get_settings()
    config = load_config(settings.model_path, settings.finetune_config, **plan.overrides)
    job = FinetuneJob(
        images=plan.images, class_noun=plan.class_noun, token=plan.token, base_model=settings.model_path,
        out_dir=plan.out_dir, work_dir=plan.work_dir, class_bank=settings.data_dir / "class-bank", config=config,
    )
    reporter = runs.ProgressReporter(plan.finetune_id, config.steps)
    reporter.start()
    hooks = Hooks(on_phase=reporter.phase, on_progress=reporter.progress, should_cancel=reporter.should_cancel)
    try:
        card = run_finetune(job, hooks)
    except Canceled:
        runs.canceled(plan.finetune_id)  # usually the web process marked it already
        return "canceled"
    if not runs.succeed(plan, card, settings.model_path):
        shutil.rmtree(plan.out_dir, ignore_errors=True)  # canceled during validation: no model
        return "canceled"
    return "succeeded"


def _discard_checkpoints(plan: runs.RunPlan) -> None:
    """A finished job never resumes; its checkpoints (optimizer state included) are the
    largest files it made. TensorBoard logs stay."""
    shutil.rmtree(Path(plan.work_dir) / "checkpoints", ignore_errors=True)


def _readable(error: Exception) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{error.__class__.__name__}: {text}"[:500] if text else error.__class__.__name__


@worker_ready.connect
def _start_sweeping(**_: object) -> None:
    """At start-up, and then every stale period (a job whose worker died moments before this
    one started is not stale yet), put fine-tunes whose worker died back on the queue."""
    threading.Thread(target=_sweep_forever, name="finetune-sweep", daemon=True).start()


def _sweep_forever() -> None:
    while True:
        sweep()
        time.sleep(get_settings().finetune_stale_after_s)


def sweep() -> list[str]:
    try:
        requeued = runs.requeue_stale()
        for finetune_id in requeued:
            log.warning("fine-tune %s: its worker died; queued again to resume from its checkpoint", finetune_id)
            enqueue("finetune.run", finetune_id)
    except Exception:
        log.exception("sweep for fine-tunes of dead workers failed")
        return []
    return requeued
