"""Job state transitions, shared by the web process (cancel, stale sweeps) and the worker.

    queued --start--> running --finish--> succeeded | failed | canceled
    queued --finish (cancel)--> canceled
    running --sweep (heartbeat too old)--> failed

Every transition is a conditional UPDATE (`repository.update_if`), so a cancel, a sweep and
a worker racing on one job cannot overwrite each other; whoever moves a job into a final
state calls `finish`, the one place where its credits are settled. Callers own the
transaction.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from app.credits import pricing
from app.credits import service as credits
from app.generation import repository
from app.generation.models import Generation, Image
from app.model_base import JobStatus, utcnow

log = logging.getLogger(__name__)

# The worker beats every HEARTBEAT_EVERY_S from a thread, whatever the job is doing (model
# loads included); a running job silent for STALE_AFTER_S has lost its worker.
HEARTBEAT_EVERY_S = 2.0
STALE_AFTER_S = 30.0
STALE_MESSAGE = (
    "The worker running this job stopped unexpectedly (it crashed or was restarted) "
    "before finishing. No images were made; please submit it again."
)
RUNNING = (JobStatus.RUNNING,)


@dataclass(frozen=True)
class JobSpec:
    """What the worker needs to run a job: plain values, no ORM object across sessions."""

    id: str
    user_id: str
    prompt: str
    negative_prompt: str
    n: int
    steps: int
    guidance_scale: float
    seeds: list[int]
    model_id: str
    profile: str


@dataclass(frozen=True)
class StoredImage:
    index: int
    seed: int
    path: str  # relative to storage
    width: int
    height: int


def image_seeds(base_seed: int, n: int) -> list[int]:
    # A1111's convention: image k of a batch uses seed + k, so any single image is
    # reproduced by asking for n=1 with its own seed.
    return [(base_seed + k) % 2**32 for k in range(n)]


def start(session: Session, job_id: str) -> JobSpec | None:
    """queued (or running, for a re-delivered task) -> running; None when there is nothing
    to do (unknown or already final job)."""
    now = utcnow()
    started = repository.update_if(
        session, job_id, repository.ACTIVE,
        status=JobStatus.RUNNING, started_at=now, heartbeat_at=now, progress=0.0, error=None,
    )
    if not started:
        return None
    job = repository.get(session, job_id)
    session.refresh(job)
    return JobSpec(
        id=job.id, user_id=job.user_id, prompt=job.prompt, negative_prompt=job.negative_prompt,
        n=job.n, steps=job.steps, guidance_scale=job.guidance_scale,
        seeds=image_seeds(job.seed or 0, job.n), model_id=job.model_id, profile=job.profile,
    )


def beat(session: Session, job_id: str, progress: float | None = None) -> bool:
    """Heartbeat (and progress); False once the job is no longer running (canceled, or
    failed by a sweep): the worker stops."""
    values: dict = {"heartbeat_at": utcnow()}
    if progress is not None:
        values["progress"] = progress
    return repository.update_if(session, job_id, RUNNING, **values)


def settle_charge(session: Session, job: Generation, images_made: int) -> None:
    """The job's outcome is final: charge the images made, refund the rest (idempotent:
    a re-delivered task settles nothing twice)."""
    used = pricing.charge_for_pictures(job.cost, job.n, images_made)
    credits.settle(session, job.user_id, f"generation:{job.id}", used=used)


def finish(
    session: Session,
    job_id: str,
    status: JobStatus,
    from_statuses: tuple[JobStatus, ...] = RUNNING,
    images: list[StoredImage] = (),
    error: str | None = None,
) -> bool:
    """Move a job into a final state (only from `from_statuses`), record its images, settle
    its credits. False when someone else finished it first (nothing is changed then)."""
    assert status.is_final
    now = utcnow()
    values = {"status": status, "finished_at": now, "heartbeat_at": now, "error": error}
    if status == JobStatus.SUCCEEDED:
        values["progress"] = 1.0
    if not repository.update_if(session, job_id, from_statuses, **values):
        return False
    job = repository.get(session, job_id)
    session.refresh(job)
    _record_images(session, job, images)
    settle_charge(session, job, images_made=len(images))
    return True


def _record_images(session: Session, job: Generation, images: list[StoredImage]) -> None:
    # A re-run rewrites image k in place (unique per job and index).
    existing = {image.index: image for image in job.images}
    for stored in images:
        image = existing.get(stored.index)
        if image is None:
            image = Image(generation_id=job.id, user_id=job.user_id, index=stored.index)
            job.images.append(image)
        image.seed, image.path = stored.seed, stored.path
        image.width, image.height = stored.width, stored.height
    session.flush()


def is_stale(job: Generation, now: datetime | None = None) -> bool:
    if job.status != JobStatus.RUNNING:
        return False
    last = job.heartbeat_at or job.started_at or job.created_at
    return last < (now or utcnow()) - timedelta(seconds=STALE_AFTER_S)


def fail_if_stale(session: Session, job: Generation) -> bool:
    """Resolve one running job whose worker is gone (checked whenever a job is read)."""
    if not is_stale(job):
        return False
    failed = finish(session, job.id, JobStatus.FAILED, error=STALE_MESSAGE)
    if failed:
        log.warning("generation %s: worker lost (heartbeat %s); marked failed", job.id, job.heartbeat_at)
        session.refresh(job)
    return failed


def sweep_stale(session: Session) -> list[str]:
    """Fail every running job whose heartbeat is older than STALE_AFTER_S."""
    cutoff = utcnow() - timedelta(seconds=STALE_AFTER_S)
    swept = [job.id for job in repository.stale_running(session, cutoff)]
    swept = [job_id for job_id in swept if finish(session, job_id, JobStatus.FAILED, error=STALE_MESSAGE)]
    if swept:
        log.warning("marked %d generation(s) failed after their worker was lost: %s", len(swept), swept)
    return swept
