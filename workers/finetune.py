"""`finetune.run(job_id)` on the training queue: a DreamBooth fine-tune of one subject.

Thin: the job's life is the job layer's (workers/jobs.py, app/jobs), the fine-tune's own
bookkeeping `app.personalization.runs`, the training `workers.dreambooth`. The work folder is
stable per job, so a job queued again after its worker was killed (the reconciler does that
once its heartbeat is stale) continues from its last checkpoint; Lightning writes checkpoints
atomically, so a kill never leaves a torn one.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from app.config import get_settings
from app.jobs.kinds import FINETUNE
from app.jobs.running import DATABASE_ERRORS, JobRun
from app.personalization import runs
from workers.jobs import job_task

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see workers/shapes/train.py
log = logging.getLogger(__name__)


@job_task(FINETUNE, failure="Training failed")
def run(job: JobRun) -> str:
    # 1. the plan, 2. training, reporting to the database
    plan = runs.plan(job)
    log.info("fine-tune %s: attempt %d", job.job_id, job.attempt)
    try:
        return _train(job, plan)
    finally:
        if _over(job):
            _discard_checkpoints(plan)


def _over(job: JobRun) -> bool:
    """Whether the job has ended, or is about to (a failure while still ours): then nothing
    will resume from its checkpoints. One that another worker holds now, or one interrupted by
    an outage (it is queued again), resumes from them."""
    try:
        status = job.status()
    except DATABASE_ERRORS:
        return False
    return status is not None and (status.is_final or not job.lost)


def _train(job: JobRun, plan: runs.RunPlan) -> str:
    from workers.dreambooth.config import load_config
    from workers.dreambooth.train import Canceled, FinetuneJob, Hooks, free_training_memory, run_finetune

    settings = get_settings()
    config = load_config(settings.model_path, settings.finetune_config, **plan.overrides)
    finetune = FinetuneJob(
        images=plan.images, class_noun=plan.class_noun, token=plan.token, base_model=settings.model_path,
        out_dir=plan.out_dir, work_dir=plan.work_dir, class_bank=settings.data_dir / "class-bank", config=config,
    )
    reporter = runs.ProgressReporter(job, config.steps)
    reporter.start()
    hooks = Hooks(on_phase=reporter.phase, on_progress=reporter.progress, should_cancel=job.stopped,
                  on_checkpoints=reporter.checkpoints)
    try:
        card = run_finetune(finetune, hooks)
    except Canceled:
        return "canceled"  # the job is not ours any more (its owner canceled it)
    finally:
        free_training_memory()
    if not runs.succeed(job, plan, card, settings.model_path):
        shutil.rmtree(plan.out_dir, ignore_errors=True)  # canceled during validation: no model
        return "canceled"
    return "succeeded"


def _discard_checkpoints(plan: runs.RunPlan) -> None:
    """A finished job never resumes; its checkpoints (optimizer state included) are the
    largest files it made. TensorBoard logs stay."""
    shutil.rmtree(Path(plan.work_dir) / "checkpoints", ignore_errors=True)
