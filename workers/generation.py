"""`generation.run(job_id)`: a wake-up for the inference worker, which then runs the queued
generations in batches: the next job in line (app/generation/scheduling.py: premium first,
users in fair turns) and the later ones that can share its UNet calls, up to
IMAGEBOOTH_MAX_BATCH_IMAGES pictures, waiting up to IMAGEBOOTH_BATCH_WAIT_MS for company when
fewer are queued. Each job of a batch is claimed, reported, canceled, stored, recorded and
settled on its own through the job layer (workers/jobs.py, app/jobs): a canceled job leaves
the batch at the next step, and the others go on with exactly the pictures they would get
alone. Run again after its worker died, a job reproduces the same images (its seeds are
stored) and rewrites them by index.

Worker start (signals at the bottom): torch threads, the base model loaded and warmed once
per process, with every batch size up to the largest compiled.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import threading
import time
from pathlib import Path

from celery.signals import worker_process_init, worker_ready

from app import storage
from app.catalog.checkpoint import IncompatibleModel, ModelPathError
from app.catalog.service import ModelNotFound
from app.config import get_settings
from app.db import session_scope
from app.generation import runs, scheduling
from app.jobs.kinds import GENERATION, INFERENCE_QUEUE
from app.jobs.running import JobRun, report_together, succeed_together
from workers.celery_app import app
from workers.engine import (
    GenerationRequest,
    GenerationResult,
    ModelRef,
    RequestError,
    check_request,
    parameters_for,
    png_bytes,
)
from workers.engine.batching import BatchMember, generate_batch
from workers.jobs import KnownErrors, batch_job_task, readable_error

log = logging.getLogger(__name__)
DENOISE_SHARE = 0.95  # progress reached when denoising ends; decoding and saving finish it
FAILURE = "Generation failed"
KNOWN_ERRORS: KnownErrors = {
    RequestError: lambda exc: f"Invalid {getattr(exc, 'field', 'request')}: {str(exc).split(': ', 1)[-1]}",
    ModelNotFound: lambda exc: "The model this job asked for no longer exists.",
    IncompatibleModel: lambda exc: str(exc),
    ModelPathError: lambda exc: "The model cannot be served: it is not a model of a family this service runs "
                                "(the worker's log names the problem).",
    # Paths stay in the worker's log; the owner learns what happened.
    OSError: lambda exc: "The model could not be loaded: its files are missing or damaged.",
}


def gather() -> list[str]:
    """The next batch's job ids; when it has room, first a short wait for company."""
    settings = get_settings()
    with session_scope() as session:
        job_ids, images = scheduling.next_batch(session, settings.max_batch_images)
    if job_ids and images < settings.max_batch_images and settings.batch_wait_ms > 0:
        time.sleep(settings.batch_wait_ms / 1000)
        with session_scope() as session:
            job_ids, _ = scheduling.next_batch(session, settings.max_batch_images)
    return job_ids


@batch_job_task(GENERATION, failure=FAILURE, gather=gather, known_errors=KNOWN_ERRORS)
def run(jobs: list[JobRun]) -> str:
    started = time.perf_counter()
    # 1. what to make (a job whose model is gone or whose request is invalid fails alone)
    batch = [(job, spec) for job, spec in zip(jobs, _specs(jobs), strict=True) if spec is not None]
    if not batch:
        return "failed"
    # 2. one engine run for the batch: every job's progress, and with it its cancel check, in
    #    one write per progress interval; a canceled job leaves at the next step
    members = [BatchMember(_request(spec), stopped=_lost_of(job)) for job, spec in batch]
    engine_started = time.perf_counter()
    results = generate_batch(_model_ref(batch[0][1]), members, _Progress([job for job, _ in batch]))
    # 3. the PNGs, then 4. each outcome: they count only if the job is still ours
    stored = time.perf_counter()
    made = [(job, spec, _store_pngs(spec, job.attempt, result)) for (job, spec), result in zip(batch, results, strict=True)
            if result is not None]
    pace = _image_step_s(time.perf_counter() - started, results)
    recorded = time.perf_counter()
    outcomes = [(job, functools.partial(runs.record_images, spec=spec, images=images)) for job, spec, images in made]
    for (_, _, images), ours in zip(made, succeed_together(outcomes, image_step_s=pace), strict=True):
        if not ours:
            _remove_files(images)
    log.info("batch of %d jobs: specs %.0f ms, engine %.0f ms, PNGs %.0f ms, outcomes %.0f ms", len(jobs),
             1e3 * (engine_started - started), 1e3 * (stored - engine_started), 1e3 * (recorded - stored),
             1e3 * (time.perf_counter() - recorded))
    return f"batch of {len(jobs)}: {len(made)} succeeded"


def _specs(jobs: list[JobRun]) -> list[runs.JobSpec | None]:
    """Each claimed job's parameters (one read for all), or None after recording why it cannot run."""
    found: list[runs.JobSpec | Exception] = []
    with session_scope() as session:
        for job in jobs:
            try:
                spec = runs.spec_of(session, job.job_id)
                check_request(_request(spec))
                found.append(spec)
            except (ModelNotFound, RequestError) as exc:
                found.append(exc)
    for job, item in zip(jobs, found, strict=True):
        if isinstance(item, Exception):
            job.fail(readable_error(item, FAILURE, KNOWN_ERRORS))
    return [item if isinstance(item, runs.JobSpec) else None for item in found]


class _Progress:
    """The batch's progress: every job's in one write, at most once per the kind's interval."""

    def __init__(self, jobs: list[JobRun]) -> None:
        self.jobs, self.last = jobs, -math.inf

    def __call__(self, step: int, total: int) -> None:
        now = time.monotonic()
        if now - self.last >= GENERATION.progress_every_s:
            self.last = now
            report_together(self.jobs, progress=DENOISE_SHARE * step / total)


def _lost_of(job: JobRun):
    return lambda: job.lost  # set by the batch's progress write (a cancel) or the heartbeat


def _image_step_s(seconds: float, results: list[GenerationResult | None]) -> float | None:
    """The batch's measured seconds per picture and step (the queue's estimated wait)."""
    made = next((result for result in results if result is not None), None)
    return seconds / (made.batch_images * made.steps) if made and made.batch_images else None


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


_prepared_in: set[int] = set()  # pids: Celery's solo pool sends both signals that call this


def _prepare_process(pool_processes: int) -> None:
    """Threads for torch, then the base model loaded and run once, in the process that
    will run the tasks (once: a second warm-up ran a real-size model again, 23 s at SD 1.5)."""
    if os.getpid() in _prepared_in:
        return
    _prepared_in.add(os.getpid())
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
        # Every other batch size a batch can have, behind the first jobs: a compiled backend has
        # a static shape per size, whose first use would otherwise stall the job that needs it.
        sizes = range(2, get_settings().max_batch_images + 1)
        threading.Thread(target=_warm_batch_sizes, args=(ModelRef(base=model_path), sizes), daemon=True).start()
    except Exception:  # a broken model fails its jobs with a message; the worker stays up
        log.exception("could not warm up the base model %s", model_path)


def _warm_batch_sizes(model: ModelRef, sizes: range) -> None:
    from workers.engine.batching import warm_batch_sizes

    started = time.perf_counter()
    try:
        if warm_batch_sizes(model, sizes):
            log.info("batch sizes %d-%d warm in %.1fs", sizes.start, sizes.stop - 1, time.perf_counter() - started)
    except Exception:  # a job of that size compiles it then
        log.exception("could not warm batch sizes %s", list(sizes))


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
