"""Generation routes: submit, read (with long-poll), cancel, history, downloads."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Response, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse

from app.auth.dependencies import CurrentUser
from app.catalog.schemas import WarningOut
from app.db import SessionDep, released
from app.generation import service
from app.generation.schemas import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    MAX_WAIT_S,
    GenerationCreate,
    GenerationCreated,
    GenerationOut,
    GenerationPage,
)
from app.generation.views import generation_view
from app.openapi import errors
from app.validation import GenerationId, ImageId, Line

router = APIRouter(prefix="/api/v1", tags=["generation"])
IdempotencyKey = Annotated[Line | None, Header(alias="Idempotency-Key", min_length=1, max_length=255)]


@router.post("/generations", status_code=status.HTTP_202_ACCEPTED, responses=errors(402, 404))
def create_generation(
    body: GenerationCreate, user: CurrentUser, session: SessionDep, idempotency_key: IdempotencyKey = None
) -> GenerationCreated:
    job, _ = service.submit(session, user, body, idempotency_key)  # its task is sent after the commit
    warnings = WarningOut.of(service.prompt_warnings(session, user, job))
    return GenerationCreated(id=job.id, status=job.status.value, cost=job.cost, warnings=warnings)


@router.get("/generations")
def list_generations(
    user: CurrentUser,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    cursor: Annotated[Line | None, Query(max_length=200)] = None,
) -> GenerationPage:
    jobs, next_cursor = service.history(session, user, limit, cursor)
    return GenerationPage(items=[generation_view(job) for job in jobs], next_cursor=next_cursor)


@router.get("/generations/{job_id}")
async def get_generation(
    job_id: GenerationId,
    user: CurrentUser,
    session: SessionDep,
    wait: Annotated[float, Query(ge=0, le=MAX_WAIT_S, description="long-poll: seconds to wait for a change")] = 0,
) -> GenerationOut:
    view = await run_in_threadpool(service.get_job, session, user, job_id)
    if wait > 0 and not view.job.status.is_final:
        seen = (view.job.status, view.job.progress)
        # End this request's read transaction first (while it lasts, it sees a snapshot)
        # and give its database slot up while waiting.
        async with released(session):
            await service.wait_for_change(user.id, job_id, seen, wait)
        session.expire_all()
        view = await run_in_threadpool(service.get_job, session, user, job_id)
    return generation_view(view.job, view.place)


@router.post("/generations/{job_id}/cancel")
def cancel_generation(job_id: GenerationId, user: CurrentUser, session: SessionDep) -> GenerationOut:
    return generation_view(service.cancel(session, user, job_id))


@router.get("/images/{image_id}", response_class=FileResponse, responses=errors(410))
def download_image(image_id: ImageId, user: CurrentUser, session: SessionDep) -> FileResponse:
    path, file_name = service.image_download(session, user, image_id)
    return FileResponse(path, media_type="image/png", filename=file_name)


@router.get("/generations/{job_id}/archive", responses=errors(409, 410))
def download_archive(job_id: GenerationId, user: CurrentUser, session: SessionDep) -> Response:
    data, file_name = service.archive(session, user, job_id)
    return Response(
        data, media_type="application/zip", headers={"Content-Disposition": f'attachment; filename="{file_name}"'}
    )
