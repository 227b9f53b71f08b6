"""`generation.run(job_id)`: load the job, run the engine, store PNGs, record the outcome.

Idempotent under acks-late re-delivery: a finished job is left alone; a job still marked
running (its first worker died) is re-run from the start and its images rewritten by index.
Progress and the cancel check ride on the engine's per-step callback (throttled); a thread
beats the job's heartbeat so that a job whose worker is gone is found stale and failed.

Worker start (signals at the bottom): torch threads, the base model loaded and warmed once
per process, and a periodic sweep of stale jobs.
"""

from __future__ import annotations

import logging
import os
import threading
import time

from celery.signals import worker_process_init, worker_ready

from app import storage
from app.catalog.service import ModelNotFound, resolve_model
from app.config import get_settings
from app.db import session_scope
from app.generation import lifecycle, notify
from app.model_base import JobStatus
from workers.celery_app import INFERENCE_QUEUE, app
from workers.engine import GenerationRequest, ModelRef, RequestError, generate_images, parameters_for, png_bytes

log = logging.getLogger(__name__)
PROGRESS_EVERY_S = 0.15  # at most ~7 progress writes a second, however fast the steps
DENOISE_SHARE = 0.95  # progress reached when denoising ends; decoding and saving finish it
SWEEP_EVERY_S = 15.0
MAX_ERROR_CHARS = 500


class JobStopped(Exception):
    """The job left 'running' under us (canceled by its owner, or failed by a sweep)."""


@app.task(name="generation.run", acks_late=True, ignore_result=True)
def run(job_id: str) -> str:
    # 1. claim the job (nothing to do when it is unknown or already final)
    with session_scope() as session:
        spec = lifecycle.start(session, job_id)
    notify.job_changed(job_id)
    if spec is None:
        log.info("generation %s: nothing to do (unknown or already final)", job_id)
        return "skipped"
    heartbeat = _Heartbeat(job_id)
    heartbeat.start()
    try:
        # 2. the model, the engine run (progress + cancel per step), 3. the PNGs
        ref = _model_ref(spec)
        result = generate_images(ref, _request(spec), _ProgressWriter(job_id))
        images = _store_pngs(spec, result)
    except JobStopped:
        log.info("generation %s: stopped (canceled or failed elsewhere)", job_id)
        return "stopped"
    except Exception as exc:  # every failure ends as a readable message on the job
        message = _readable_error(exc)
        log.warning("generation %s failed: %s", job_id, message, exc_info=not isinstance(exc, RequestError))
        with session_scope() as session:
            lifecycle.finish(session, job_id, JobStatus.FAILED, error=message)
        notify.job_changed(job_id)
        return "failed"
    finally:
        heartbeat.stop()
    # 4. the outcome; images count only if the job is still running (not canceled meanwhile)
    with session_scope() as session:
        done = lifecycle.finish(session, job_id, JobStatus.SUCCEEDED, images=images)
    notify.job_changed(job_id)
    if not done:
        _remove_files(images)
    return "succeeded" if done else "stopped"


def _model_ref(spec: lifecycle.JobSpec) -> ModelRef:
    with session_scope() as session:
        model = resolve_model(session, spec.user_id, spec.model_id)
    return ModelRef(base=model.base_path, personal=model.personal_path, name=model.name)


def _request(spec: lifecycle.JobSpec) -> GenerationRequest:
    return GenerationRequest(
        prompt=spec.prompt,
        negative_prompt=spec.negative_prompt,
        n=spec.n,
        steps=spec.steps,
        guidance_scale=spec.guidance_scale,
        seeds=spec.seeds,
        profile=spec.profile,
    )


def _store_pngs(spec: lifecycle.JobSpec, result) -> list[lifecycle.StoredImage]:
    stored = []
    for index, image in enumerate(result.images):
        relative = f"generations/{spec.user_id}/{spec.id}/{index}.png"
        storage.write_bytes(relative, png_bytes(image, parameters_for(result, index)))
        stored.append(lifecycle.StoredImage(index, result.seeds[index], relative, image.width, image.height))
    return stored


def _remove_files(images: list[lifecycle.StoredImage]) -> None:
    for image in images:
        storage.resolve(image.path).unlink(missing_ok=True)


def _readable_error(exc: Exception) -> str:
    if isinstance(exc, RequestError):
        message = f"Invalid {exc.field}: {str(exc).split(': ', 1)[-1]}"
    elif isinstance(exc, ModelNotFound):
        message = "The model this job asked for no longer exists."
    elif isinstance(exc, OSError):
        # Paths stay in the worker's log; the owner learns what happened.
        message = "The model could not be loaded: its files are missing or damaged."
    else:
        message = f"Generation failed: {type(exc).__name__}: {exc}"
    return message[:MAX_ERROR_CHARS]


class _ProgressWriter:
    """The engine's on_progress: writes progress at most every PROGRESS_EVERY_S and stops
    the run (by raising) once the job is no longer running."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self.last_write = 0.0

    def __call__(self, step: int, total: int) -> None:
        now = time.monotonic()
        if now - self.last_write < PROGRESS_EVERY_S and step < total:
            return
        self.last_write = now
        with session_scope() as session:
            running = lifecycle.beat(session, self.job_id, progress=DENOISE_SHARE * step / total)
        notify.job_changed(self.job_id)
        if not running:
            raise JobStopped(self.job_id)


class _Heartbeat(threading.Thread):
    """Beats the job's heartbeat while the task runs, model loads included."""

    def __init__(self, job_id: str) -> None:
        super().__init__(name=f"heartbeat-{job_id}", daemon=True)
        self.job_id = job_id
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(lifecycle.HEARTBEAT_EVERY_S):
            try:
                with session_scope() as session:
                    if not lifecycle.beat(session, self.job_id):
                        return
            except Exception:  # a missed beat is retried; the sweep tolerates many
                log.exception("heartbeat for generation %s failed", self.job_id)

    def stop(self) -> None:
        self.stopped.set()


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
    if not (model_path / "model_index.json").exists():
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


def _sweep_periodically() -> None:
    while True:
        try:
            with session_scope() as session:
                lifecycle.sweep_stale(session)
        except Exception:
            log.exception("stale generation sweep failed")
        time.sleep(SWEEP_EVERY_S)


@worker_process_init.connect
def _warm_pool_child(**_: object) -> None:
    # Prefork children: each loads its own pipeline (sharing one across fork is unsafe).
    if _consumes_inference():
        _prepare_process(app.conf.worker_concurrency or os.cpu_count() or 1)


@worker_ready.connect
def _on_worker_ready(sender=None, **_: object) -> None:
    if not _consumes_inference():
        return
    threading.Thread(target=_sweep_periodically, name="generation-sweep", daemon=True).start()
    pool = getattr(sender, "pool", None)
    if pool is not None and "prefork" not in type(pool).__module__:
        _prepare_process(1)  # solo/threads pool: tasks run in this process
