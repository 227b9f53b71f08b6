"""Subjects and fine-tunes over HTTP (see API.md, Personalization)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, File, Form, UploadFile
from fastapi.concurrency import run_in_threadpool

from app.auth.dependencies import CurrentUser
from app.db import SessionDep
from app.openapi import errors
from app.personalization import repository, service
from app.personalization.schemas import FinetuneCreated, FinetuneOut, FinetuneRequest, SubjectList, SubjectOut
from app.validation import FinetuneId, Line, SubjectId

router = APIRouter(prefix="/api/v1", tags=["personalization"])


@router.post("/subjects", status_code=201, response_model=SubjectOut)
async def create_subject(
    user: CurrentUser,
    session: SessionDep,
    name: Annotated[Line | None, Form()] = None,
    class_noun: Annotated[Line | None, Form()] = None,
    images: Annotated[list[UploadFile], File(description="3 to 5 photos of the subject")] = [],  # noqa: B006
) -> SubjectOut:
    checked = await service.check_subject(name, class_noun, images)
    # The database and the files are blocking work: in a worker thread, off the event loop.
    subject = await run_in_threadpool(service.store_subject, session, user, checked)
    return await run_in_threadpool(service.subject_view, session, subject)


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


@router.get("/finetunes/{finetune_id}", response_model=FinetuneOut)
def get_finetune(finetune_id: FinetuneId, user: CurrentUser, session: SessionDep) -> FinetuneOut:
    return service.finetune_view(service.own_finetune(session, user, finetune_id))


@router.post("/finetunes/{finetune_id}/cancel", response_model=FinetuneOut)
def cancel_finetune(finetune_id: FinetuneId, user: CurrentUser, session: SessionDep) -> FinetuneOut:
    return service.finetune_view(service.cancel_finetune(session, user, finetune_id))
