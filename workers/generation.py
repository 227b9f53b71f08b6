"""`generation.run(job_id)`: load the job, run the engine, store PNGs, record the outcome.

The job's life (claim, heartbeat, progress, cancel, outcome, settlement) is the job layer's
(workers/jobs.py, app/jobs). Run again after its worker died, a job reproduces the same
images (its seeds are stored) and rewrites them by index.

Worker start (signals at the bottom): torch threads, the base model loaded and warmed once
per process.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from celery.signals import worker_process_init, worker_ready

from app import storage
from app.catalog.checkpoint import IncompatibleModel, ModelPathError
from app.catalog.service import ModelNotFound
from app.config import get_settings
from app.db import session_scope
from app.generation import runs
from app.jobs.kinds import GENERATION, INFERENCE_QUEUE
from app.jobs.running import JobRun
from workers.celery_app import app
from workers.engine import (
    GenerationRequest,
    GenerationResult,
    ModelRef,
    RequestError,
    generate_images,
    parameters_for,
    png_bytes,
)
from workers.jobs import job_task

log = logging.getLogger(__name__)
DENOISE_SHARE = 0.95  # progress reached when denoising ends; decoding and saving finish it
KNOWN_ERRORS = {
    RequestError: lambda exc: f"Invalid {exc.field}: {str(exc).split(': ', 1)[-1]}",
    ModelNotFound: lambda exc: "The model this job asked for no longer exists.",
    IncompatibleModel: lambda exc: str(exc),
    ModelPathError: lambda exc: "The model cannot be served: it is not a model of a family this service runs "
                                "(the worker's log names the problem).",
    # Paths stay in the worker's log; the owner learns what happened.
    OSError: lambda exc: "The model could not be loaded: its files are missing or damaged.",
}


@job_task(GENERATION, failure="Generation failed", known_errors=KNOWN_ERRORS)
def run(job: JobRun) -> str:
    # 1. what to make, and with which model
    with session_scope() as session:
        spec = runs.spec_of(session, job.job_id)
    # 2. the engine run (progress and the cancel check ride on its per-step callback)
    on_progress = lambda step, total: job.report(progress=DENOISE_SHARE * step / total, force=step == total)  # noqa: E731
    result = generate_images(_model_ref(spec), _request(spec), on_progress)
    # 3. the PNGs, 4. the outcome: they count only if the job is still ours
    images = _store_pngs(spec, job.attempt, result)
    if job.succeed(lambda session: runs.record_images(session, spec, images)):
        return "succeeded"
    _remove_files(images)
    return "stopped"


def _model_ref(spec: runs.JobSpec) -> ModelRef:
    personal = Path(spec.personal_path) if spec.personal_path else None
    return ModelRef(base=Path(spec.base_path), personal=personal, name=spec.model_name)


def _request(spec: runs.JobSpec) -> GenerationRequest:
    return GenerationRequest(
        prompt="" if spec.prompts else spec.prompt, prompts=spec.prompts, negative_prompt=spec.negative_prompt, n=spec.n,
        steps=spec.steps,
        guidance_scale=spec.guidance_scale, seeds=spec.seeds, profile=spec.profile,
    )


def _store_pngs(spec: runs.JobSpec, attempt: int, result: GenerationResult) -> list[runs.StoredImage]:
    # Per attempt: a worker that lost its job (presumed dead) removes only its own files.
    stored = []
    for index, image in enumerate(result.images):
        relative = f"generations/{spec.user_id}/{spec.id}/{attempt}-{index}.png"
        storage.write_bytes(relative, png_bytes(image, parameters_for(result, index)))
        stored.append(runs.StoredImage(index, result.seeds[index], relative, image.width, image.height))
    return stored


def _remove_files(images: list[runs.StoredImage]) -> None:
    for image in images:
        storage.resolve(image.path).unlink(missing_ok=True)


# --- worker start -------------------------------------------------------------------------
def _consumes_inference() -> bool:
    return INFERENCE_QUEUE in app.amqp.queues.consume_from


def _prepare_process(pool_processes: int) -> None:
    """Threads for torch, then the base model loaded and run once, in the process that
    will run the tasks."""
    import torch

    # Torch's default (one thread per core, or OMP_NUM_THREADS) is right for one process;
    # pool processes split the cores, since oversubscribed OpenMP threads spin against
    # each other (100x slower measured on a busy 2-core machine).
    share = max(1, (os.cpu_count() or 1) // max(1, pool_processes))
    torch.set_num_threads(min(torch.get_num_threads(), share))
    model_path = get_settings().model_path
    if not model_path.exists():
        # Not an error yet (the bundled model may still be training): its jobs fail with a
        # message, and the first job after it appears loads it.
        log.warning("base model %s not found; generation jobs fail until it exists", model_path)
        return
    try:
        started = time.perf_counter()
        from workers.engine import warm_up

        warm_up(ModelRef(base=model_path))
        log.info("inference worker warm: %s in %.1fs", model_path, time.perf_counter() - started)
    except Exception:  # a broken model fails its jobs with a message; the worker stays up
        log.exception("could not warm up the base model %s", model_path)


@worker_process_init.connect
def _warm_pool_child(**_: object) -> None:
    # Prefork children: each loads its own pipeline (sharing one across fork is unsafe).
    if _consumes_inference():
        _prepare_process(app.conf.worker_concurrency or os.cpu_count() or 1)


@worker_ready.connect
def _on_worker_ready(sender: object = None, **_: object) -> None:
    pool = getattr(sender, "pool", None)
    if _consumes_inference() and pool is not None and "prefork" not in type(pool).__module__:
        _prepare_process(1)  # solo/threads pool: tasks run in this process
