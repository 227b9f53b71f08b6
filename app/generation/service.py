"""Generation rules: submit, read, cancel, history, downloads.

Services never commit: the request owns the transaction. A job's task is sent after that
transaction commits (app/jobs/outbox.py); its life from there on is the job layer's (app/jobs).
"""

from __future__ import annotations

import asyncio
import io
import logging
import re
import secrets
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

from redis.exceptions import RedisError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app import pagination, storage
from app.auth.models import User
from app.catalog.service import resolve_model, vocabulary_hints
from app.catalog.vocabulary import Hint
from app.config import get_settings
from app.credits import pricing
from app.credits import service as credits
from app.db import new_session, run_in_slot
from app.errors import AppError, NotFound
from app.generation import limits, notify, repository, scheduling
from app.generation.models import Generation, Image
from app.generation.schemas import GenerationCreate
from app.jobs import lifecycle
from app.jobs.kinds import GENERATION
from app.model_base import JobStatus, new_id

log = logging.getLogger(__name__)
WAIT_POLL_S = 0.025  # long-poll without Redis: how often a waiting request reads the job
NOTICE_FALLBACK_S = 0.25  # long-poll with Redis: reads between notices, for unannounced changes


# --- submit -----------------------------------------------------------------------------
def submit(
    session: Session, user: User, body: GenerationCreate, idempotency_key: str | None = None
) -> tuple[Generation, bool]:
    """Create a job (or find the one this idempotency key made); (job, created)."""
    # 1. a repeat of an earlier request: the first job, no second charge or task
    if idempotency_key:
        earlier = repository.by_idempotency_key(session, user.id, idempotency_key)
        if earlier is not None:
            return earlier, False
    # 2. the model (404 naming it) and the values the job will really run with
    model = resolve_model(session, user, body.model)
    job = Generation(
        id=new_id(),
        user_id=user.id,
        prompt=body.prompts[0] if body.prompts else body.prompt,
        prompts=body.prompts,
        negative_prompt=body.negative_prompt,
        n=body.pictures(),
        steps=body.steps if body.steps is not None else _default_steps(body.profile, model.default_steps),
        guidance_scale=float(body.guidance_scale if body.guidance_scale is not None else model.default_guidance),
        # Drawn now when not given, so a re-delivered task reproduces the same images.
        seed=body.seed if body.seed is not None else secrets.randbelow(limits.MAX_SEED + 1),
        model_id=model.id,
        profile=body.profile,
        idempotency_key=idempotency_key,
    )
    job.cost = pricing.generation_cost(model.base_path, model.default_steps, job.n, job.steps)
    # 3. charge and write it; a concurrent request with the same key loses on the unique
    #    constraint and gives its hold back
    try:
        lifecycle.submit(session, GENERATION, user, job)
    except IntegrityError:
        earlier = repository.by_idempotency_key(session, user.id, idempotency_key or "")
        if earlier is None:
            raise
        with lifecycle.credit_gate():
            credits.settle(session, user.id, GENERATION.reference(job.id), used=0)
        return earlier, False
    return job, True


def prompt_warnings(session: Session, user: User, job: Generation) -> list[Hint]:
    """The words of the job's prompts its model does not know (the job runs anyway)."""
    return vocabulary_hints(session, user, job.model_id, job.image_prompts(), as_list=job.prompts is not None)


# --- read -------------------------------------------------------------------------------
@dataclass(frozen=True)
class JobView:
    job: Generation
    place: scheduling.Place | None  # while it is queued


def get_job(session: Session, user: User, job_id: str) -> JobView:
    job = repository.get_owned(session, user.id, job_id)
    if job is None:
        raise NotFound("generation")
    place = scheduling.place_in_line(session, job) if job.status == JobStatus.QUEUED else None
    return JobView(job, place)


def _snapshot(user_id: str, job_id: str) -> tuple[JobStatus, float] | None:
    with new_session() as session:
        return repository.progress_snapshot(session, user_id, job_id)


async def wait_for_change(user_id: str, job_id: str, seen: tuple[JobStatus, float], timeout_s: float) -> None:
    """Return once the job's status or progress differs from `seen`, or after timeout_s.

    With Redis, the worker's change notices wake us at once and the job is re-read only
    then (or every NOTICE_FALLBACK_S, for changes nobody announced). Without it, the job is
    read every WAIT_POLL_S. Each read is one primary-key query in a fresh transaction (a
    long one would keep seeing the same snapshot).
    """
    if seen[0].is_final:
        return
    deadline = time.monotonic() + timeout_s
    redis_url = get_settings().redis_url
    if redis_url:
        try:
            await _wait_for_notices(redis_url, user_id, job_id, seen, deadline)
            return
        except RedisError as exc:
            log.warning("long-poll falls back to polling (Redis: %s)", exc)
    while time.monotonic() < deadline:
        await asyncio.sleep(min(WAIT_POLL_S, max(0.0, deadline - time.monotonic())))
        if await run_in_slot(_snapshot, user_id, job_id) != seen:
            return


async def _wait_for_notices(redis_url: str, user_id: str, job_id: str, seen, deadline: float) -> None:
    import redis.asyncio as aioredis

    async with (
        aioredis.Redis.from_url(redis_url, socket_connect_timeout=2) as client,
        client.pubsub(ignore_subscribe_messages=True) as pubsub,
    ):
        await pubsub.subscribe(notify.channel(job_id))
        # Subscribed first, then read: a change in between is seen by this read.
        while True:
            if await run_in_slot(_snapshot, user_id, job_id) != seen:
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            await pubsub.get_message(timeout=min(NOTICE_FALLBACK_S, remaining))


# --- cancel -----------------------------------------------------------------------------
def cancel(session: Session, user: User, job_id: str) -> Generation:
    """Queued: never runs. Running: the worker stops at its next step. Final: unchanged."""
    job = repository.get_owned(session, user.id, job_id)
    if job is None:
        raise NotFound("generation")
    if lifecycle.cancel(session, GENERATION, job.id):
        session.refresh(job)
    return job


# --- history ----------------------------------------------------------------------------
def history(session: Session, user: User, limit: int, cursor: str | None) -> tuple[list[Generation], str | None]:
    after = pagination.decode_cursor(cursor) if cursor else None
    jobs = repository.page_of(session, user.id, limit + 1, after)
    more = len(jobs) > limit
    jobs = jobs[:limit]
    return jobs, (pagination.encode_cursor(jobs[-1].created_at, jobs[-1].id) if more else None)


# --- downloads --------------------------------------------------------------------------
def slug(text: str, max_length: int = 48) -> str:
    words = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return words[:max_length].rstrip("-") or "image"


def image_file_name(job: Generation, image: Image) -> str:
    return f"{slug(job.prompt_of(image.index))}-{image.seed}.png"


def image_download(session: Session, user: User, image_id: str) -> tuple[Path, str]:
    image = repository.image_owned(session, user.id, image_id)
    if image is None:
        raise NotFound("image")
    return _stored_file(image), image_file_name(image.generation, image)


def _stored_file(image: Image) -> Path:
    path = storage.resolve(image.path)
    if not path.is_file():
        raise AppError("image_missing", "The image file is missing from storage.", 410)
    return path


def archive(session: Session, user: User, job_id: str) -> tuple[bytes, str]:
    """All of a job's images as one zip (stored, not deflated: PNGs are compressed)."""
    job = repository.get_owned(session, user.id, job_id)
    if job is None:
        raise NotFound("generation")
    if not job.images:
        raise AppError("no_images", f"The generation has no images (status: {job.status.value}).", 409)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as bundle:
        for image in job.images:
            name = f"{image.index + 1:02d}-{image_file_name(job, image)}"
            bundle.write(_stored_file(image), arcname=name)  # a lost file is a 410, as for one image
    return buffer.getvalue(), f"{slug(job.prompt)}.zip"


def _default_steps(profile: str, model_default: int) -> int:
    """The fast profile takes the model card's step count; quality takes its own."""
    return limits.QUALITY_DEFAULT_STEPS if profile == "quality" else model_default
