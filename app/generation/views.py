"""A generation as the API shows it (the routes, and the events webhooks send)."""

from __future__ import annotations

from app.generation.models import Generation
from app.generation.scheduling import Place
from app.generation.schemas import GenerationOut, ImageOut


def generation_view(job: Generation, place: Place | None = None) -> GenerationOut:
    return GenerationOut(
        id=job.id,
        status=job.status.value,
        progress=round(job.progress, 4),
        queue_position=place.position if place else None,
        estimated_wait_s=place.estimated_wait_s if place else None,
        images=[
            ImageOut(id=image.id, index=image.index, prompt=job.prompt_of(image.index), seed=image.seed,
                     url=f"/api/v1/images/{image.id}", width=image.width, height=image.height)
            for image in job.images
        ],
        error=job.error,
        prompt=job.prompt,
        prompts=job.prompts,
        negative_prompt=job.negative_prompt,
        n=job.n,
        steps=job.steps,
        guidance_scale=job.guidance_scale,
        seed=job.seed,
        model=job.model_id,
        profile=job.profile,
        cost=job.cost,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
    )
