"""Subjects and fine-tunes over HTTP (see API.md, Personalization)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, File, Form, Query, UploadFile
from fastapi.concurrency import run_in_threadpool

from app.auth.dependencies import CurrentUser
from app.catalog.schemas import WarningOut
from app.db import SessionDep
from app.openapi import errors
from app.personalization import repository, service
from app.personalization.schemas import (
    MAX_LISTED_FINETUNES,
    FinetuneCreated,
    FinetuneList,
    FinetuneOut,
    FinetuneRequest,
    SubjectCreated,
    SubjectList,
    SubjectOut,
)
from app.personalization.views import finetune_view
from app.validation import FinetuneId, Line, SubjectId

router = APIRouter(prefix="/api/v1", tags=["personalization"])


@router.post("/subjects", status_code=201, response_model=SubjectCreated)
async def create_subject(
    user: CurrentUser,
    session: SessionDep,
    name: Annotated[Line | None, Form()] = None,
    class_noun: Annotated[Line | None, Form()] = None,
    images: Annotated[list[UploadFile], File(description="3 to 5 photos of the subject")] = [],  # noqa: B006
) -> SubjectCreated:
    checked = await service.check_subject(name, class_noun, images)
    # The database and the files are blocking work: in a worker thread, off the event loop.
    subject = await run_in_threadpool(service.store_subject, session, user, checked)
    hints = service.class_noun_hints(subject)  # the model card, read once and cached
    view = await run_in_threadpool(service.subject_view, session, subject)
    return SubjectCreated(**view.model_dump(), warnings=WarningOut.of(hints))


@router.get("/subjects", response_model=SubjectList)
def list_subjects(user: CurrentUser, session: SessionDep) -> SubjectList:
    return SubjectList(items=service.subject_views(session, repository.subjects_of(session, user.id)))


@router.get("/subjects/{subject_id}", response_model=SubjectOut)
def get_subject(subject_id: SubjectId, user: CurrentUser, session: SessionDep) -> SubjectOut:
    return service.subject_view(session, service.own_subject(session, user, subject_id))


@router.post("/subjects/{subject_id}/finetunes", status_code=202, response_model=FinetuneCreated,
             responses=errors(402))
def start_finetune(
    subject_id: SubjectId,
    user: CurrentUser,
    session: SessionDep,
    request: Annotated[FinetuneRequest | None, Body()] = None,
) -> FinetuneCreated:
    finetune = service.start_finetune(session, user, subject_id, request or FinetuneRequest())
    return FinetuneCreated(id=finetune.id, status=finetune.status, cost=finetune.cost)


@router.get("/finetunes", response_model=FinetuneList)
def list_finetunes(
    user: CurrentUser, session: SessionDep,
    subject_id: Annotated[Line | None, Query(max_length=64, description="only this subject's")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LISTED_FINETUNES)] = MAX_LISTED_FINETUNES,
) -> FinetuneList:
    """The caller's fine-tunes, newest first."""
    return FinetuneList(items=[finetune_view(run) for run in repository.finetunes_of(session, user.id, subject_id, limit)])


@router.get("/finetunes/{finetune_id}", response_model=FinetuneOut)
def get_finetune(finetune_id: FinetuneId, user: CurrentUser, session: SessionDep) -> FinetuneOut:
    return finetune_view(service.own_finetune(session, user, finetune_id))


@router.post("/finetunes/{finetune_id}/cancel", response_model=FinetuneOut)
def cancel_finetune(finetune_id: FinetuneId, user: CurrentUser, session: SessionDep) -> FinetuneOut:
    return finetune_view(service.cancel_finetune(session, user, finetune_id))
