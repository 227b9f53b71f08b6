"""What the worker reads and writes for a generation, beyond the job layer's lifecycle
(app/jobs): the job's parameters, and the images it made."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from app.catalog.service import resolve_model
from app.generation import repository
from app.generation.models import Image


@dataclass(frozen=True)
class JobSpec:
    """What the worker needs to run a job: plain values, no ORM object across sessions."""

    id: str
    user_id: str
    prompt: str
    prompts: list[str] | None  # a prompt list: one per image
    negative_prompt: str
    n: int
    steps: int
    guidance_scale: float
    seeds: list[int]
    profile: str
    model_name: str
    base_path: str
    personal_path: str | None


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


def spec_of(session: Session, job_id: str) -> JobSpec:
    """The claimed job's parameters and model (ModelNotFound when the model was deleted)."""
    job = repository.get(session, job_id)
    assert job is not None  # claimed: it exists
    model = resolve_model(session, job.user_id, job.model_id)
    return JobSpec(
        id=job.id, user_id=job.user_id, prompt=job.prompt, prompts=job.prompts, negative_prompt=job.negative_prompt, n=job.n,
        steps=job.steps, guidance_scale=job.guidance_scale, seeds=image_seeds(job.seed or 0, job.n),
        profile=job.profile, model_name=model.name, base_path=str(model.base_path),
        personal_path=str(model.personal_path) if model.personal_path else None,
    )


def record_images(session: Session, spec: JobSpec, images: list[StoredImage]) -> None:
    """The images of a succeeding job; a re-run rewrites image k in place (unique per job
    and index)."""
    job = repository.get(session, spec.id)
    assert job is not None
    existing = {image.index: image for image in job.images}
    for stored in images:
        image = existing.get(stored.index)
        if image is None:
            image = Image(generation_id=job.id, user_id=job.user_id, index=stored.index)
            job.images.append(image)
        image.seed, image.path = stored.seed, stored.path
        image.width, image.height = stored.width, stored.height
    session.flush()
